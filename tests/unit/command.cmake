# Operator commands: the pure JSON parser shared by POST /api/command and MQTT commands
# (server/command_parse.c); the rest of server/command.c is tested on the real appliance
# (tests/integration/command_test.py).
pw_unit_test(command_parse_test SOURCES unit/command_parse_test.c
             ${PROJECT_SOURCE_DIR}/server/command_parse.c LIBS pw_bal PkgConfig::JANSSON)
target_include_directories(command_parse_test PRIVATE ${PROJECT_SOURCE_DIR}/server)
