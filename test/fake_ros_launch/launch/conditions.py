"""FAKE for tests: the real launch/launch_ros cannot be installed from PyPI (see ../shared/docs/ros2-from-pip.md);
this records what a launch file asks for."""

from __future__ import annotations

from launch.utilities import perform_substitutions


class IfCondition:
    def __init__(self, predicate_expression) -> None:
        self.predicate_expression = predicate_expression

    def evaluate(self, context) -> bool:
        value = perform_substitutions(context, self.predicate_expression).lower()
        if value not in ("true", "1", "false", "0"):
            raise ValueError(f"IfCondition: expected true/false/1/0, got {value!r}")  # as the real one does
        return value in ("true", "1")
