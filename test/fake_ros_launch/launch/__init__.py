"""FAKE for tests: the real launch/launch_ros cannot be installed from PyPI (see ../shared/docs/ros2-from-pip.md);
this records what a launch file asks for.

Only the names our launch files use, with the real signatures, so that a misspelt keyword fails here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class LaunchDescription:
    def __init__(self, initial_entities: list | None = None) -> None:
        self.entities = list(initial_entities or [])


@dataclass
class LaunchContext:
    """launch_configurations as in launch; package_shares (fake only) maps a package to its share folder."""

    launch_configurations: dict[str, str] = field(default_factory=dict)
    package_shares: dict[str, Path] = field(default_factory=dict)
