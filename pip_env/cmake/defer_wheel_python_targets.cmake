# For building an upstream interface package unchanged (composition_interfaces from ../shared/vendor): passed as
# CMAKE_PROJECT_INCLUDE, it runs wheel_python_targets.cmake at the end of the package's CMakeLists, after its
# find_package calls have imported the wheels' targets. (A deferred call's arguments are expanded when it runs,
# hence the variable set now.)
set(_hydranet_wheel_python_targets ${CMAKE_CURRENT_LIST_DIR}/wheel_python_targets.cmake)
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL include ${_hydranet_wheel_python_targets})
