"""FAKE for tests: the real launch/launch_ros cannot be installed from PyPI (see ../shared/docs/ros2-from-pip.md);
this records what a launch file asks for."""

from __future__ import annotations

# Keyword arguments that Node passes on to launch.actions.ExecuteProcess / Action.
_EXECUTE_PROCESS_KWARGS = {"output", "emulate_tty", "condition", "respawn", "respawn_delay", "additional_env",
                           "cwd", "sigterm_timeout", "sigkill_timeout", "prefix", "on_exit", "log_cmd"}


class Node:
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None, parameters=None,
                 remappings=None, ros_arguments=None, arguments=None, **kwargs) -> None:
        unknown = set(kwargs) - _EXECUTE_PROCESS_KWARGS
        if unknown:
            raise TypeError(f"Node() got unexpected keyword arguments {sorted(unknown)}")
        self.executable = executable
        self.package = package
        self.name = name
        self.namespace = namespace
        self.exec_name = exec_name
        self.parameters = list(parameters or [])
        self.remappings = list(remappings or [])
        self.ros_arguments = list(ros_arguments or [])
        self.arguments = list(arguments or [])
        self.condition = kwargs.get("condition")
        self.kwargs = kwargs
