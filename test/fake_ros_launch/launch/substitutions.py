"""FAKE for tests: the real launch/launch_ros cannot be installed from PyPI (see ../shared/docs/ros2-from-pip.md);
this records what a launch file asks for."""

from __future__ import annotations

import os

from launch.utilities import perform_substitutions


class LaunchConfiguration:
    def __init__(self, variable_name: str, *, default=None) -> None:
        self.variable_name = variable_name
        self.default = default

    def perform(self, context) -> str:
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is None:
            raise KeyError(f"launch configuration {self.variable_name!r} does not exist")
        return perform_substitutions(context, self.default)


class PathJoinSubstitution:
    def __init__(self, substitutions: list) -> None:
        self.substitutions = list(substitutions)

    def perform(self, context) -> str:
        return os.path.join(*(perform_substitutions(context, s) for s in self.substitutions))
