# MQTT meter feeds: the pure payload parsing (transport/mqtt_feed.c) per preset, every refused
# message, and how plain topics are joined, in explicit time. The client on the loop is tested
# against Debian's mosquitto broker in integration/mqtt_meter.py.
pw_unit_test(mqtt_feed_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/mqtt_feed_test.c
             LIBS pw_mqtt_feed ${MATH_LIB})
# The MQTT client connection on a loop (mqtt/conn.c): client ids, what it refuses to set up,
# close from inside its callbacks, and QoS 1 acknowledgements, SUBACKs, a kept session and the
# last will against Debian's mosquitto started by the test on 127.0.0.1 (skipped without it).
pw_unit_test(mqtt_conn_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/mqtt_conn_test.c LIBS pw_mqtt_conn)
