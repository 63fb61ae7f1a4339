# Control core unit tests: the policy between transports and the balancer (renewals, cuts and
# their confirmation, sessions, online and car-state rules, config carry-over, events) in fake
# time, on facilities parsed from JSON.
pw_unit_test(ctl_test SOURCES unit/ctl_test.c
             LIBS pw_ctl pw_cfg pw_bal PkgConfig::JANSSON ${MATH_LIB})
