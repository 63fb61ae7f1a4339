# MQTT meter feeds: the pure payload parsing (transport/mqtt_feed.c) per preset, every refused
# message, and how plain topics are joined, in explicit time. The client on the loop is tested
# against Debian's mosquitto broker in integration/mqtt_meter.py.
pw_unit_test(mqtt_feed_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/mqtt_feed_test.c
             LIBS pw_mqtt_feed ${MATH_LIB})
