# Included by our interface packages (pip_env/vision_msgs, pip_env/tf2_msgs) after rosidl_generate_interfaces.
# The PyPI ROS wheels export *__rosidl_generator_py targets whose include directories point into the
# wheel builder's Python (/opt/python/cp3xx-...), which does not exist here. Point them at this
# interpreter's headers and NumPy's instead (measured workaround, ../../shared/docs/ros2-from-pip.md).
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
get_directory_property(_imported IMPORTED_TARGETS)
foreach(_t IN LISTS _imported)
  if(_t MATCHES "__rosidl_generator_py$")
    set_target_properties(${_t} PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
  endif()
endforeach()
