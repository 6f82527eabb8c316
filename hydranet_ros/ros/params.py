"""The node's parameters: one schema, defaults from config/hydranet.yaml, validation in one place.

The schema here holds what each parameter *is* (type, meaning, allowed values); config/hydranet.yaml holds
every default. Nothing else declares parameters, the README's table is generated from both
(`hydranet params --markdown`), and a test checks that the YAML and the schema name the same keys, so the
three cannot drift apart.

Per-camera settings (`cameras.<name>.<key>`) fall back to `camera_defaults.<key>`, so a camera needs only its
`image_topic`. `resolve` turns what the parameter files and `-p` gave into every value, or into the list of
what is wrong; the node and `hydranet params --file` both call it, so they accept exactly the same files.

Plain Python, no rclpy: the node turns these into ParameterDescriptors (see node.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hydranet_ros.core.mounting import Mounting, MountingError
from hydranet_ros.core.schema import Field

CAMERA = "{camera}"  # placeholder in per-camera parameter names: cameras.<name>.<key>
# Parameters that rclpy itself declares on every node: a params file may set them, they are not ours to check.
RCLPY_OWN = ("use_sim_time", "start_type_description_service")
RCLPY_OWN_PREFIXES = ("qos_overrides.",)
CAMERA_DEFAULTS = "camera_defaults"  # camera_defaults.<key>: what a camera has unless cameras.<name>.<key> says
AUTO = "auto"


def _grid_bounds_problem(b: list) -> str | None:
    if len(b) != 4 or not (b[0] < b[1] and b[2] < b[3]):
        return f"must be [x_min, x_max, y_min, y_max] with x_min < x_max and y_min < y_max, got {b!r}"
    return None


def _mounting_problem(pose: list) -> str | None:
    if not pose:
        return None
    try:
        Mounting.from_pose(pose)
    except MountingError as exc:
        return f"is impossible: {exc}"
    return None


@dataclass(frozen=True)
class Param(Field):
    """A node parameter: a `core.schema.Field` (a list is of strings unless `item` says otherwise) that may be
    read-only while running."""

    read_only: bool = False  # changing it needs a restart (re-configure)

    def __post_init__(self) -> None:
        if self.type is list and self.item is None:
            object.__setattr__(self, "item", str)

    def validate(self, value: Any) -> str | None:
        """Return why `value` is not acceptable, or None when it is."""
        why = self.problem(value)
        return None if why is None else f"{self.name} {why}"


SCHEMA: tuple[Param, ...] = (
    Param("mode", str, "live: the freshest frame of each camera, results no older than max_age_ms; "
          "replay: every frame in arrival order, nothing dropped, use with use_sim_time",
          choices=("live", "replay"), read_only=True),
    Param("model", str, "model file (.onnx with its model card beside it); empty: the default model in "
          "the package's models/", read_only=True),
    Param("autostart", bool, "configure and activate at start (plain `ros2 run`); false: wait for lifecycle "
          "transitions (`ros2 lifecycle set /hydranet configure`)", read_only=True),
    Param("providers", list, "inference engines in order of preference: tensorrt, cuda, cpu (ONNX Runtime); "
          "unavailable ones are skipped with a warning", choices=("tensorrt", "cuda", "cpu"), read_only=True),
    Param("fp16", bool, "half precision on the GPU (TensorRT engine, or torch on CUDA)", read_only=True),
    Param("engine_cache_dir", str, "where TensorRT engines built by `hydranet build-engine` are kept; empty: "
          "~/.cache/hydranet_ros/engines", read_only=True),
    Param("threads", int, "CPU inference threads; 0: the engine's default", min=0, max=256, read_only=True),
    Param("dense_output", str, "resolution of drivable_area, lane_lines and depth: network (the network's "
          "view of the image, cheap) or source (the camera's resolution)", choices=("network", "source")),
    Param("points_stride", int, "points: one point per this many depth pixels in each direction", min=1, max=64),
    Param("base_frame", str, "the vehicle frame whose z = 0 is the road (REP 105 base_link): cameras' mountings "
          "are looked up in TF from it to each image's frame_id"),
    Param("publish_mounting_tf", bool, "a camera's mounting given by its parameter is also published on "
          "/tf_static (base_frame -> the images' frame_id), so RViz and the rest of the stack place its outputs; "
          "never where TF already gives that frame a parent", read_only=True),
    Param("depth_scale", str, "metric scale of depth: road (per frame, from the drivable area's road pixels and "
          "the camera's mounting), network (the model's own), or auto (road where the mounting is known)",
          choices=(AUTO, "road", "network")),
    Param("road_head", str, "the segmentation head whose non-zero classes are drivable road (depth_scale road, "
          "drivable_grid)"),
    Param("lane_head", str, "the segmentation head whose non-zero classes are lane markings (lane_polylines)"),
    Param("grid_resolution_m", float, "drivable_grid: cell size in metres", min=0.05, max=5.0),
    Param("grid_bounds_m", list, "drivable_grid: [x_min, x_max, y_min, y_max] in base_frame, metres (x forward, "
          "y left)", item=float, rule=_grid_bounds_problem),
    Param("grid_max_range_m", float, "drivable_grid: cells further from the camera than this stay unknown", min=1.0,
          max=500.0),
    Param("max_age_ms", int, "live mode: no result is published more than this long after its frame reached the "
          "node (DDS reception to publication); frames that cannot make it are dropped as stale", min=1,
          max=60_000),
    Param("max_queue_mb", float, "replay mode: frames waiting for inference may hold at most this much memory "
          "(plus one frame per camera); when full, the node stops taking frames from DDS, which slows a reliable "
          "publisher down instead of dropping", min=1.0, max=65_536.0, read_only=True),
    Param("batch_window_ms", int, "after a camera's frame arrives, wait up to this long for the other cameras' "
          "frames, so that frames of one instant share a pass", min=0, max=1000),
    Param("max_batch", int, "frames in one inference pass at most: 0 takes every waiting camera's frame into one "
          "pass; N splits them into passes of N. On a CPU a batch saves no time and the engine's memory grows with "
          "it: 1 held 4 cameras to 1.4x one camera's memory here, against 2.2x in one pass (bench/node_latency.py)",
          min=0, max=64, read_only=True),
    Param("score_threshold", float, "detections below this score are not published", min=0.0, max=1.0),
    Param("diagnostics_period_s", float, "period of the /diagnostics status", min=0.1, max=60.0,
          read_only=True),
    Param("camera_names", list, "names of the cameras; each needs `cameras.<name>.image_topic`, and has the "
          "other `cameras.<name>.*` parameters below (default: `camera_defaults.*`)", read_only=True),
    Param(f"cameras.{CAMERA}.image_topic", str, "image topic of this camera (sensor_msgs/Image, or "
          "CompressedImage when compressed is true); required for every camera", read_only=True),
    Param(f"cameras.{CAMERA}.compressed", bool, "subscribe to sensor_msgs/CompressedImage (jpeg, png)",
          read_only=True),
    Param(f"cameras.{CAMERA}.camera_info_topic", str, "sensor_msgs/CameraInfo topic; auto: camera_info beside "
          "the image topic, as image_transport names it (/a/image_raw and /a/image_raw/compressed -> "
          "/a/camera_info); empty: none (depth then uses fallback_fx or the model's canonical focal length, "
          "with a warning)", read_only=True),
    Param(f"cameras.{CAMERA}.qos", str, "input reliability: auto (reliable when every publisher of the topic "
          "offers reliable, so lost fragments are repaired, else best effort; follows the publishers as they come, "
          "reliable until the first is seen), reliable, or best_effort", choices=(AUTO, "reliable", "best_effort"),
          read_only=True),
    Param(f"cameras.{CAMERA}.fallback_fx", float, "focal length (pixels, at the image's resolution) used for "
          "metric depth until camera_info arrives; 0: the model's canonical focal length (a warning)",
          min=0.0, max=1e6),
    Param(f"cameras.{CAMERA}.frame_id", str, "overrides the images' header.frame_id when not empty",
          read_only=True),
    Param(f"cameras.{CAMERA}.mounting", list, "where the camera sits when TF has no transform from base_frame to "
          "its images' frame: [x, y, z, roll, pitch, yaw] of its body frame (REP 103: x forward, y left, z up) in "
          "base_frame, metres and radians, written as floats (1.0, not 1); positive pitch looks down. Empty: "
          "unknown", default=[], item=float, rule=_mounting_problem),
)
# The per-camera keys that have a camera_defaults.<key>: all but the topic and the mounting, which differ per camera.
CAMERA_KEYS = tuple(p.name.rsplit(".", 1)[1] for p in SCHEMA if CAMERA in p.name)
DEFAULTABLE = tuple(k for k in CAMERA_KEYS if k not in ("image_topic", "mounting"))


class ParameterError(ValueError):
    """A parameter file or value that the node cannot accept; the message says which and why."""


def config_file(name: str) -> Path:
    """A file of config/: of this source tree (a checkout, pip -e), else of the installed ROS package."""
    source = Path(__file__).resolve().parents[2] / "config" / name
    if source.is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("hydranet_ros")) / "config" / name
    except (ImportError, LookupError, OSError) as exc:  # not installed, or AMENT_PREFIX_PATH unset
        raise ParameterError(f"cannot find config/{name}: not in {source.parent}, and {exc}") from exc


def default_config_path() -> Path:
    return config_file("hydranet.yaml")


def _camera_key(name: str) -> str | None:
    """The per-camera key of a `cameras.<name>.<key>` (or schema `cameras.{camera}.<key>`) name, else None."""
    return name.rsplit(".", 1)[1] if name.startswith("cameras.") else None


def expand(cameras: list[str]) -> list[Param]:
    """The schema with the per-camera entries instantiated for each camera name, and a camera_defaults.<key>
    entry for each per-camera key that has a default."""
    out: list[Param] = []
    for p in SCHEMA:
        if CAMERA in p.name:
            key = _camera_key(p.name)
            if key in DEFAULTABLE:
                out.append(Param(**{**p.__dict__, "name": f"{CAMERA_DEFAULTS}.{key}", "read_only": True,
                                    "description": f"default of cameras.<name>.{key}: {p.description}"}))
            out.extend(Param(**{**p.__dict__, "name": p.name.replace(CAMERA, c)}) for c in cameras)
        else:
            out.append(p)
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mapping -> dotted parameter names, as ROS 2 reads a params file."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


class _Plain(str):
    """An unquoted YAML scalar, typed later the way rcl types it (see _rcl_value)."""


class _RclLoader(yaml.SafeLoader):
    """YAML as ROS 2's params-file parser (rcl_yaml_param_parser) reads it, so that a file checked here means what
    it means to the node: every unquoted scalar is typed by rcl's rules, not YAML 1.1's (`1e3` is a number to
    rcl and a string to PyYAML; `1_000` the reverse)."""

    def resolve(self, kind, value, implicit):  # PyYAML calls it with these three
        if kind is yaml.ScalarNode and implicit[0]:
            return "tag:hydranet,plain"
        return super().resolve(kind, value, implicit)


_RclLoader.add_constructor("tag:hydranet,plain", lambda loader, node: _Plain(loader.construct_scalar(node)))
_TRUE = {"Y", "y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_FALSE = {"N", "n", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
_INT = re.compile(r"\s*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_FLOAT = re.compile(r"\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)
_YAML_SPECIAL = {".nan": math.nan, ".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf}


def _rcl_value(value: Any) -> Any:
    """rcl's get_value(): bool words, then a whole strtol (base 0: hex, octal) that fits int64, then a whole
    strtod, else the string itself. Quoted scalars stay strings."""
    if isinstance(value, list):
        return [_rcl_value(v) for v in value]
    if not isinstance(value, _Plain):
        return value
    text = str(value)
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    if _INT.fullmatch(text):
        digits = text.strip()
        sign = -1 if digits.startswith("-") else 1
        digits = digits.lstrip("+-")
        base = 16 if digits[:2] in ("0x", "0X") else 8 if digits.startswith("0") and len(digits) > 1 else 10
        number = sign * int(digits, base)
        if -(2**63) <= number < 2**63:
            return number
    if text.lower() in _YAML_SPECIAL:
        return _YAML_SPECIAL[text.lower()]
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def load_params_file(path: Path) -> dict[str, Any]:
    """Read the `/**: ros__parameters:` section of a ROS 2 params file into dotted names, typed as rcl types it."""
    try:
        doc = yaml.load(Path(path).read_text(), Loader=_RclLoader)  # a SafeLoader: no Python objects
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError(f"cannot read parameter file {path}: {exc}") from exc
    try:
        section = doc["/**"]["ros__parameters"]
    except (TypeError, KeyError):
        raise ParameterError(f"{path}: expected a '/**: ros__parameters:' mapping") from None
    if not isinstance(section, dict):
        raise ParameterError(f"{path}: '/**: ros__parameters:' must be a mapping")
    return {str(k): _rcl_value(v) for k, v in flatten(section).items()}


def _coerce(p: Param, value: Any) -> Any:
    """An int where a float is expected is that float (a YAML `500` for `fallback_fx`), as rclpy would not."""
    if p.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if p.type is list and isinstance(value, tuple):
        value = list(value)
    if p.type is list and p.item is float and isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return value


def resolve(given: dict[str, Any], ignorable: set[str] | frozenset[str] = frozenset()) -> tuple[dict[str, Any],
                                                                                             list[str]]:
    """Every parameter's value from what the files and `-p` gave (`given`, merged, the package defaults
    included), and every problem with them: unknown names, missing values, bad values.

    A camera's key falls back to camera_defaults.<key>. Names in `ignorable` are never unknown: the package
    defaults describe a `front` camera, and a user who names other cameras leaves its keys unused."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    given = {n: v for n, v in given.items() if n not in RCLPY_OWN and not n.startswith(RCLPY_OWN_PREFIXES)}
    cameras = given.get("camera_names")
    if not isinstance(cameras, (list, tuple)) or not cameras or not all(isinstance(c, str) for c in cameras):
        return values, [f"camera_names must be a non-empty list of camera names, got {cameras!r}"]
    cameras = list(cameras)
    if len(set(cameras)) != len(cameras):
        problems.append(f"camera_names has duplicate names: {cameras}")
    for c in cameras:
        if not c.isidentifier():
            problems.append(f"camera name {c!r} must be a plain identifier (letters, digits, _)")
    schema = {p.name: p for p in expand(cameras)}
    for name in sorted(set(given) - set(schema) - set(ignorable)):
        problems.append(f"unknown parameter {name!r} (known: {', '.join(sorted(schema))})")
    for name, p in schema.items():
        key = _camera_key(name)
        if name in given:
            value = given[name]
        elif key in DEFAULTABLE:
            value = given.get(f"{CAMERA_DEFAULTS}.{key}")
        else:
            value = p.default  # None: required
        if value is None:
            if name.endswith(".image_topic"):
                problems.append(f"{name} is required: the topic camera {name.split('.')[1]!r} publishes on")
            else:
                problems.append(f"missing parameter {name!r}")
            continue
        value = _coerce(p, value)
        if why := p.validate(value):
            problems.append(why)
        values[name] = value
    return values, list(dict.fromkeys(problems))


def camera_info_beside(image_topic: str, compressed: bool = False) -> str:
    """image_transport's rule: CameraInfo is a sibling of the image topic, whose `/compressed` suffix (a transport,
    not part of the name) is dropped first: /a/image_raw and /a/image_raw/compressed -> /a/camera_info."""
    base = image_topic.rstrip("/")
    if compressed and base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    parent, sep, _ = base.rpartition("/")  # a relative name stays relative: image -> camera_info
    return f"{parent}{sep}camera_info"


def camera_info_topic(setting: str, image_topic: str, compressed: bool) -> str:
    """The CameraInfo topic a camera's `camera_info_topic` setting names ('' for none; `auto`: beside the image)."""
    return camera_info_beside(image_topic, compressed) if setting == AUTO else setting


def markdown_table(defaults: dict[str, Any]) -> str:
    """The README's parameter table, from the schema and the defaults file."""
    cameras = defaults.get("camera_names", [])
    rows = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    for p in SCHEMA:
        key = _camera_key(p.name)
        if key in DEFAULTABLE:
            shown = defaults.get(f"{CAMERA_DEFAULTS}.{key}")
        elif key is not None:
            shown = defaults.get(p.name.replace(CAMERA, cameras[0])) if cameras else None
        else:
            shown = defaults.get(p.name)
        if shown is None and p.default is not None:
            shown = p.default
        allowed = f" ({' / '.join(p.choices)})" if p.choices else ""
        if p.min is not None or p.max is not None:
            allowed = f" (range {p.min} to {p.max})"
        ro = " Read-only while running." if p.read_only else ""
        cell = f"`{p.name.replace(CAMERA, '<name>')}`"
        if key in DEFAULTABLE:
            cell += f" (default `{CAMERA_DEFAULTS}.{key}`)"
        kind = f"list of {p.item.__name__}" if p.type is list and p.item not in (None, str) else p.type.__name__
        rows.append(f"| {cell} | {kind} | `{shown!r}` | {p.description}{allowed}.{ro} |")
    return "\n".join(rows)
