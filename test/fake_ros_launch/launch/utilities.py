"""FAKE for tests: the real launch/launch_ros cannot be installed from PyPI (see ../shared/docs/ros2-from-pip.md);
this records what a launch file asks for."""

from __future__ import annotations


def perform_substitutions(context, subs) -> str:
    """A string, a substitution, or a list of them (concatenated), as launch evaluates them."""
    if isinstance(subs, str):
        return subs
    if isinstance(subs, (list, tuple)):
        return "".join(perform_substitutions(context, s) for s in subs)
    return subs.perform(context)
