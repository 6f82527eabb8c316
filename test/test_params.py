"""Parameters: one schema, one defaults file, one generated README table; clear errors on bad values; and
`hydranet params --file` accepts exactly the files hydranet_node accepts, with the same values."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NODE, spin_until
from hydranet_ros.ros import params as P

REPO = Path(__file__).resolve().parents[1]
HYDRANET = [str(Path(sys.executable).parent / "hydranet")]


@pytest.fixture(scope="module")
def defaults() -> dict:
    return P.load_params_file(REPO / "config" / "hydranet.yaml")


def test_defaults_file_names_exactly_the_schema(defaults):
    """Every global parameter and every camera default, and the one thing a camera has no default for: its topic."""
    expected = {p.name for p in P.expand([])} | {"cameras.front.image_topic"}
    assert set(defaults) == expected
    values, problems = P.resolve(defaults)
    assert problems == []
    assert values["cameras.front.qos"] == "auto" and values["cameras.front.camera_info_topic"] == "auto"


def test_readme_parameter_table_is_generated_from_schema_and_defaults(defaults):
    table = P.markdown_table(defaults)
    readme = (REPO / "README.md").read_text()
    assert table in readme, "README's parameter table is stale: paste the output of `hydranet params --markdown`"
    for p in P.SCHEMA:
        assert f"`{p.name.replace(P.CAMERA, '<name>')}`" in table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "fast"}, "mode must be one of live, replay; got 'fast'"),
        ({"max_age_ms": 0}, "max_age_ms must be >= 1"),
        ({"max_queue_mb": 0.5}, "max_queue_mb must be >= 1.0"),
        ({"score_threshold": 1.5}, "score_threshold must be <= 1.0"),
        ({"score_threshold": float("nan")}, "score_threshold must be finite"),
        ({"diagnostics_period_s": "1"}, "diagnostics_period_s must be float, got str"),
        ({"max_age_ms": True}, "max_age_ms must be int, got bool"),
        ({"cameras.front.compressed": "yes"}, "cameras.front.compressed must be bool"),
        ({"camera_defaults.qos": "fast"}, "camera_defaults.qos must be one of auto, reliable, best_effort"),
        ({"cameras.front.qos": "sometimes"}, "cameras.front.qos must be one of auto, reliable, best_effort"),
        ({"max_age": 5}, "unknown parameter 'max_age'"),
        ({"cameras.front.image_topc": "/x"}, "unknown parameter 'cameras.front.image_topc'"),
        ({"camera_names": ["front", "front"]}, "camera_names has duplicate names"),
        ({"camera_names": []}, "camera_names must be a non-empty list"),
        ({"camera_names": ["front", "rear"]}, "cameras.rear.image_topic is required"),
        ({"camera_names": ["front-left"]}, "camera name 'front-left' must be a plain identifier"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_reason(defaults, change, message):
    problems = P.resolve({**defaults, **change}, ignorable=set(defaults))[1]
    assert any(message in why for why in problems), problems


def test_an_int_is_accepted_where_a_float_is_expected(defaults):
    values, problems = P.resolve({**defaults, "score_threshold": 1, "camera_defaults.fallback_fx": 800})
    assert problems == [] and values["score_threshold"] == 1.0 and isinstance(values["score_threshold"], float)
    assert values["cameras.front.fallback_fx"] == 800.0


def test_cameras_named_only_in_a_file_get_the_camera_defaults(defaults):
    values, problems = P.resolve({**defaults, "camera_names": ["left", "right"],
                                  "cameras.left.image_topic": "/left/image", "cameras.right.image_topic": "/right/img",
                                  "cameras.right.qos": "best_effort", "camera_defaults.fallback_fx": 700.0},
                                 ignorable=set(defaults))
    assert problems == []
    assert values["cameras.left.qos"] == "auto" and values["cameras.right.qos"] == "best_effort"
    assert values["cameras.left.fallback_fx"] == values["cameras.right.fallback_fx"] == 700.0
    assert "cameras.front.image_topic" not in values  # the package's camera is not part of this configuration


@pytest.mark.parametrize(("setting", "topic", "compressed", "expected"), [
    ("auto", "/camera/front/image_raw", False, "/camera/front/camera_info"),
    ("auto", "/camera/front/image_raw/compressed", True, "/camera/front/camera_info"),
    ("auto", "/cam/image", False, "/cam/camera_info"),
    ("auto", "image", False, "camera_info"),  # relative stays relative (the node's namespace applies)
    ("/calib/front", "/camera/front/image_raw", False, "/calib/front"),
    ("", "/camera/front/image_raw", False, ""),
])
def test_camera_info_topic_auto_follows_image_transport(setting, topic, compressed, expected):
    assert P.camera_info_topic(setting, topic, compressed) == expected


def test_params_files_are_typed_as_rcl_types_them(tmp_path):
    """YAML 1.1 (PyYAML) and ROS 2's parser disagree on some scalars; the check must agree with the node."""
    f = tmp_path / "scalars.yaml"
    f.write_text("/**:\n  ros__parameters:\n    a: 1e3\n    b: .5\n    c: yes\n    d: 0x10\n    e: '1e3'\n"
                 "    f: 010\n    g: 1_000\n    h: -2E-3\n    i: .inf\n    j: [x, 'y']\n    k: Off\n    l: \"true\"\n")
    v = P.load_params_file(f)
    assert v == {"a": 1000.0, "b": 0.5, "c": True, "d": 16, "e": "1e3", "f": 8, "g": "1_000", "h": -0.002,
                 "i": float("inf"), "j": ["x", "y"], "k": False, "l": "true"}
    assert type(v["a"]) is float and type(v["d"]) is int and type(v["e"]) is str


def test_params_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hydranet:\n  mode: live\n")
    with pytest.raises(P.ParameterError, match=r"bad\.yaml: expected a '/\*\*: ros__parameters:' mapping"):
        P.load_params_file(bad)
    with pytest.raises(P.ParameterError, match="cannot read parameter file"):
        P.load_params_file(tmp_path / "missing.yaml")


# --- the CLI and the node, on the same files --------------------------------------------------------------------

EIGHT = ["fl", "fc", "fr", "sl", "sr", "rl", "rc", "rr"]
FILES = {
    # 8 cameras, none called front (the package default's camera), only topics given.
    "eight_cameras": "camera_names: [" + ", ".join(EIGHT) + "]\ncameras:\n" + "".join(
        f"  {c}:\n    image_topic: /vehicle/{c}/image_raw\n" for c in EIGHT),
    # Two image_topic lines; one camera overrides a default, the defaults change too; an int for a float.
    "two_cameras": ("camera_names: [left, right]\ncameras:\n  left:\n    image_topic: /left/image_raw\n"
                    "  right:\n    image_topic: /right/image_raw/compressed\n    compressed: true\n    qos: reliable\n"
                    "    mounting: [1.5, -0.3, 1.4, 0.0, 0.05, -0.1]\n"
                    "camera_defaults:\n  fallback_fx: 900\nmax_age_ms: 350\n"),
    # Scalars as rcl types them (not as YAML 1.1 does): 1e3 is a number, yes a bool, 0x100 hex, 010 octal.
    "rcl_scalars": ("camera_defaults:\n  fallback_fx: 1e3\nscore_threshold: .5\nfp16: yes\nmax_age_ms: 0x100\n"
                    "points_stride: 010\n"),
    "typo": "max_age_msec: 100\n",
    "no_topic": "camera_names: [front, rear]\n",
    "bad_qos": "camera_defaults:\n  qos: sometimes\n",
    "bad_range": "cameras:\n  front:\n    fallback_fx: -3.0\n",
}


def _write(tmp_path: Path, name: str) -> Path:
    body = "\n".join("    " + line if line else line for line in FILES[name].splitlines())
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"/**:\n  ros__parameters:\n{body}\n")
    return path


def _tool_values(stdout: str) -> dict:
    values = {}
    for line in stdout.splitlines():
        name, _, value = line.partition("  ")
        if name.strip() and value.strip() and not line.startswith(" "):
            try:
                values[name.strip()] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                continue
    return values


def _node_parameters(node, names: list[str]) -> dict:
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import GetParameters, ListParameters

    def call(client, request):
        spin_until(node, client.service_is_ready, 20.0, f"service {client.srv_name}")
        future = client.call_async(request)
        spin_until(node, future.done, 20.0, f"a reply from {client.srv_name}")
        return future.result()

    listed = call(node.create_client(ListParameters, f"/{names[0]}/list_parameters"), ListParameters.Request())
    wanted = [n for n in listed.result.names if n not in P.RCLPY_OWN]
    got = call(node.create_client(GetParameters, f"/{names[0]}/get_parameters"), GetParameters.Request(names=wanted))
    fields = {ParameterType.PARAMETER_BOOL: "bool_value", ParameterType.PARAMETER_INTEGER: "integer_value",
              ParameterType.PARAMETER_DOUBLE: "double_value", ParameterType.PARAMETER_STRING: "string_value",
              ParameterType.PARAMETER_STRING_ARRAY: "string_array_value",
              ParameterType.PARAMETER_DOUBLE_ARRAY: "double_array_value"}
    arrays = (ParameterType.PARAMETER_STRING_ARRAY, ParameterType.PARAMETER_DOUBLE_ARRAY)
    out = {}
    for n, v in zip(wanted, got.values, strict=True):
        value = getattr(v, fields[v.type])
        out[n] = list(value) if v.type in arrays else value
    return out


def test_the_cli_accepts_exactly_what_the_node_accepts_with_the_same_values(ros, rclpy_node, tmp_path):
    files = {name: _write(tmp_path, name) for name in FILES}
    nodes = {name: ros.start(NODE + ["--ros-args", "-r", f"__node:=params_{name}", "--params-file", str(path),
                                     "-p", "autostart:=false"], name=f"node_{name}")
             for name, path in files.items()}
    tools = {name: subprocess.run([*HYDRANET, "params", "--file", str(path)], capture_output=True, text=True,
                                  timeout=60) for name, path in files.items()}
    for name in ("typo", "no_topic", "bad_qos", "bad_range"):
        assert tools[name].returncode == 2, (name, tools[name].stdout, tools[name].stderr)
        assert nodes[name].proc.wait(60) == 2, (name, nodes[name].output())
    for reason, name in (("unknown parameter 'max_age_msec'", "typo"),
                         ("cameras.rear.image_topic is required", "no_topic"),
                         ("camera_defaults.qos must be one of auto, reliable, best_effort", "bad_qos"),
                         ("cameras.front.fallback_fx must be >= 0.0", "bad_range")):
        assert reason in tools[name].stderr, tools[name].stderr
        assert reason in nodes[name].output(), nodes[name].output()

    for name in ("eight_cameras", "two_cameras", "rcl_scalars"):
        assert tools[name].returncode == 0, (name, tools[name].stdout, tools[name].stderr)
        expected = _tool_values(tools[name].stdout)
        assert expected.pop("autostart") is True
        got = _node_parameters(rclpy_node, [f"params_{name}"])
        assert got.pop("autostart") is False  # -p autostart:=false, given to the node only
        assert nodes[name].alive(), nodes[name].output()
        differ = {k: (got.get(k), expected.get(k)) for k in set(got) | set(expected) if got.get(k) != expected.get(k)}
        assert not differ, (name, differ)
    eight = _tool_values(tools["eight_cameras"].stdout)
    assert eight["camera_names"] == EIGHT and eight["cameras.rr.qos"] == "auto"
    assert eight["cameras.rr.camera_info_topic"] == "auto" and "cameras.front.image_topic" not in eight
    two = _tool_values(tools["two_cameras"].stdout)
    assert two["cameras.left.fallback_fx"] == two["cameras.right.fallback_fx"] == 900.0
    assert two["cameras.right.qos"] == "reliable" and two["cameras.left.compressed"] is False
    assert two["max_age_ms"] == 350
    assert two["cameras.right.mounting"] == [1.5, -0.3, 1.4, 0.0, 0.05, -0.1] and two["cameras.left.mounting"] == []
    scalars = _tool_values(tools["rcl_scalars"].stdout)
    assert (scalars["cameras.front.fallback_fx"], scalars["score_threshold"], scalars["fp16"]) == (1000.0, 0.5, True)
    assert (scalars["max_age_ms"], scalars["points_stride"]) == (256, 8)
