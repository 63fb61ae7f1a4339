# Browser test: the dashboard in Debian's headless Chromium, driven by playwright-core from npm
# (installed into tests/browser/node_modules by scripts/test.sh with npm ci). Skipped (exit 77)
# when either is missing.
find_program(PW_NODE NAMES node nodejs)
if(PW_NODE)
  add_test(NAME browser
           COMMAND ${PW_NODE} ${CMAKE_CURRENT_LIST_DIR}/browser_test.mjs
                   --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
  set_tests_properties(browser PROPERTIES LABELS "browser" TIMEOUT 150 SKIP_RETURN_CODE 77
                       RESOURCE_LOCK chromium)
  # First start from the web UI (issue 16, item 5): an empty data folder to a balancing facility.
  add_test(NAME browser_first_start
           COMMAND ${PW_NODE} ${CMAKE_CURRENT_LIST_DIR}/browser_test.mjs
                   --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>
                   --walk first-start)
  set_tests_properties(browser_first_start PROPERTIES LABELS "browser" TIMEOUT 150
                       SKIP_RETURN_CODE 77 RESOURCE_LOCK chromium)
endif()
