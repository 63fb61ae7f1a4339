# OCPP 1.6J (ocpp/): the codec against the official schemas' rules, and one charge point's
# conversation in fake time (setup after boot, default profile, limits, quirks).
pw_unit_test(ocpp_codec_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ocpp_codec_test.c LIBS pw_ocpp)
pw_unit_test(ocpp_cp_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ocpp_cp_test.c LIBS pw_ocpp pw_cfg)
# The local controller's relay toward an upstream CSMS, wired to phasewise's own conversation.
pw_unit_test(ocpp_relay_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ocpp_relay_test.c LIBS pw_ocpp)
