"""FAKE for tests: the real launch/launch_ros cannot be installed from PyPI (see ../shared/docs/ros2-from-pip.md);
this records what a launch file asks for."""

from __future__ import annotations


class FindPackageShare:
    def __init__(self, package) -> None:
        self.package = package

    def perform(self, context) -> str:
        if self.package not in context.package_shares:
            raise LookupError(f"package {self.package!r} not found (fake: not in context.package_shares)")
        return str(context.package_shares[self.package])
