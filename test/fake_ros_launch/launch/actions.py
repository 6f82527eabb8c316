"""FAKE for tests: the real launch/launch_ros cannot be installed from PyPI (see ../shared/docs/ros2-from-pip.md);
this records what a launch file asks for."""

from __future__ import annotations


class DeclareLaunchArgument:
    def __init__(self, name: str, *, default_value=None, description: str | None = None,
                 choices: list[str] | None = None) -> None:
        self.name = name
        self.default_value = default_value
        self.description = description
        self.choices = choices
