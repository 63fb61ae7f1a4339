# Packages: the Debian packages for amd64 (label "package") and arm64 under emulation (label
# "arm64"). Slow (release builds), so outside the default suite: `ctest --preset dev -L package`
# / `-L arm64`, after docker/install-deps.sh --arm64 for the second.
add_test(NAME package_amd64 COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/deb_check.sh amd64)
set_tests_properties(package_amd64 PROPERTIES LABELS "package" TIMEOUT 900 RUN_SERIAL TRUE)
add_test(NAME arm64 COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/arm64_check.sh)
set_tests_properties(arm64 PROPERTIES LABELS "arm64" TIMEOUT 3600 RUN_SERIAL TRUE)
