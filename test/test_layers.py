"""The layers depend one way only (README, Layout): checked from every import statement in the package, including
the ones inside functions, so a lazy import cannot hide a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hydranet_ros"
ROS = {"rclpy", "rosidl_runtime_py", "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs", "geometry_msgs",
       "visualization_msgs", "builtin_interfaces", "rcl_interfaces", "lifecycle_msgs", "tf2_msgs", "nav_msgs"}
LAYERS = ("core", "model", "runtime", "train", "ros", "bags", "tools")
# layer -> the layers of this package it may import, and the third-party packages it must not
RULES: dict[str, tuple[set[str], set[str]]] = {
    "core": ({"core"}, {"torch", "torchvision", *ROS}),
    "model": ({"core", "model"}, ROS),
    "runtime": ({"core", "model", "runtime"}, ROS),
    "train": ({"core", "model", "train"}, ROS),
}


def imports(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module `path` imports, absolute (relative imports resolved against `package`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.relative_to(package.parent).with_suffix("").parts[: -node.level]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import module`
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "hydranet_ros" and len(parts) > 1 and parts[1] in LAYERS else None


def files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(RULES))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    allowed, banned = RULES[layer]
    assert files(layer), f"no files in {layer}/"
    problems = []
    for path in files(layer):
        for module in sorted(imports(path)):
            other = layer_of(module)
            if other is not None and other not in allowed:
                problems.append(f"{path.relative_to(PACKAGE)} imports {module} ({other}/)")
            if module.split(".")[0] in banned:
                problems.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not problems, "\n".join(problems)


def test_the_bag_tools_do_not_import_training() -> None:
    assert len(files("bags")) >= 6
    problems = [f"{path.relative_to(PACKAGE)} imports {m}" for path in files("bags") for m in sorted(imports(path))
                if layer_of(m) == "train"]
    assert not problems, "\n".join(problems)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path) -> None:
    """The rules above would pass vacuously if `imports` missed the kinds of import they guard against."""
    probe = tmp_path / "hydranet_ros" / "core" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    import torch\n    from ..train import trainer\n"
                     "    from hydranet_ros.ros import node\n")
    found = imports(probe, package=tmp_path / "hydranet_ros")
    assert {"torch", "hydranet_ros.train.trainer", "hydranet_ros.ros.node"} <= found
    assert {layer_of(m) for m in found} >= {"train", "ros"}


def test_every_layer_implements_every_task_kind() -> None:
    """A task kind is its options (core.tasks) plus one registered implementation per layer: a kind missing from
    one registry would load, train or run and then fail, or drop its output, at that layer."""
    from hydranet_ros.core.tasks import KINDS, OPTIONS
    from hydranet_ros.model.heads import HEADS
    from hydranet_ros.ros.publishers import PUBLISHERS
    from hydranet_ros.runtime.postprocess import POSTPROCESS
    from hydranet_ros.train.kinds import TRAINING

    assert tuple(OPTIONS) == KINDS and len(KINDS) >= 3
    for name, registry in (("model.heads.HEADS", HEADS), ("train.kinds.TRAINING", TRAINING),
                           ("runtime.postprocess.POSTPROCESS", POSTPROCESS), ("ros.publishers.PUBLISHERS", PUBLISHERS)):
        assert set(registry) == set(KINDS), f"{name} covers {sorted(registry)}, the kinds are {sorted(KINDS)}"
    assert all(HEADS[k].type == k and TRAINING[k].kind == k for k in KINDS)
    # Each kind's training states everything the dataset, trainer and affinity study ask of it.
    for k in KINDS:
        impl = TRAINING[k]
        assert impl.label_format in ("file", "boxes") and impl.primary[0] and impl.loss_options, k
