"""FAKE for tests: the real launch/launch_ros cannot be installed from PyPI (see ../shared/docs/ros2-from-pip.md);
this records what a launch file asks for."""

from __future__ import annotations

import yaml
from launch.utilities import perform_substitutions


class ParameterValue:
    def __init__(self, value, *, value_type=None) -> None:
        self.value = value
        self.value_type = value_type

    def evaluate(self, context):
        """The typed value, as launch_ros converts it: the substituted text read as YAML, checked for its type."""
        value = yaml.safe_load(perform_substitutions(context, self.value))
        if self.value_type is not None and type(value) is not self.value_type:
            raise TypeError(f"ParameterValue: {value!r} is not {self.value_type.__name__}")
        return value
