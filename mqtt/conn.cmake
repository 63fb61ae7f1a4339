# The MQTT client connection on the loop (conn.c): libmosquitto driven by uv, TLS through our own
# OpenSSL context; one per user (meter transport, state publisher, fleet uplink).
add_library(pw_mqtt_conn STATIC ${CMAKE_CURRENT_LIST_DIR}/conn.c)
target_include_directories(pw_mqtt_conn PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(pw_mqtt_conn PUBLIC pw_cfg pw_util PkgConfig::UV PkgConfig::MOSQUITTO
                                          PkgConfig::OPENSSL)
