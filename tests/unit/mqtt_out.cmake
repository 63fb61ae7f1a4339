# State out on MQTT, the pure half (mqtt/pw_mqtt_out.h): the change table in explicit time, the
# topics of a state document, Home Assistant discovery payloads and the command parser. The shell
# is tested against Debian's mosquitto in integration/mqtt_publish.py.
pw_unit_test(mqtt_out_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/mqtt_out_test.c
             LIBS pw_mqtt_out ${MATH_LIB})
