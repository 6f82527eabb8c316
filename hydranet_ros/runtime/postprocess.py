"""Network outputs -> results in the camera's geometry (no ROS).

The network sees a letterboxed copy of each camera image (runtime/preprocess.py). Everything published must be
in the camera's terms instead:

* boxes in source-image pixels;
* masks and depth at a stated resolution (`network`: the content region of the network input, e.g. 640x360 for a
  1280x720 camera; `source`: the camera's own), with the pinhole intrinsics of that resolution, so a CameraInfo
  can be published that matches the depth image pixel for pixel;
* depth in metres for *this* camera: the depth head predicts for a camera of focal length `canonical_fx`
  (model/heads.py, DepthHead), and an object of a given size looks larger under a longer focal length, so
  depth = depth_canonical * fx_network / canonical_fx, where fx_network is the camera's fx after the resize.
  Pixels at the head's range cap are reported as +inf ("beyond range", REP 118), not as a made-up distance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from hydranet_ros.core.contract import ModelContract, Task
from hydranet_ros.core.geometry import Intrinsics, Letterbox, canonical_to_metric
from hydranet_ros.core.tasks import DepthOptions


@dataclass(frozen=True)
class Detection:
    x1: float  # source pixels
    y1: float
    x2: float
    y2: float
    score: float
    class_index: int
    label: str
    distance: float | None = None  # metres along the optical axis (None without depth or ground contact)
    distance_from: str = ""  # "ground": where the box stands on the road (mounting); "depth": the depth in the box


@dataclass
class FrameResult:
    """One camera's share of a batched pass, in that camera's geometry."""

    source_size: tuple[int, int]  # (width, height) of the camera image
    dense_size: tuple[int, int]  # (width, height) of masks and depth
    dense_intrinsics: Intrinsics  # of the dense resolution
    source_intrinsics: Intrinsics
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # task -> uint8 class ids, dense_size
    depths: dict[str, np.ndarray] = field(default_factory=dict)  # task -> float32 metres, dense_size; +inf: beyond
    detections: dict[str, list[Detection]] = field(default_factory=dict)  # task -> boxes, best first
    grid: np.ndarray | None = None  # int8 bird's-eye drivable grid in base_frame (runtime/ground.py), when asked
    lanes: list | None = None  # runtime.lanes.LaneLine polylines in base_frame, when asked

    @property
    def depth(self) -> np.ndarray | None:
        """The first depth head's map (in spec order): the one box distances and the point cloud use."""
        return next(iter(self.depths.values()), None)


def _resize_nearest(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # Nearest: class ids must stay ids, and depth must not blend a car's edge with the road behind it.
    return cv2.resize(a, size, interpolation=cv2.INTER_NEAREST)


@dataclass(frozen=True)
class Placement:
    """Where one image's outputs go: its letterbox, its intrinsics, and the dense outputs' size and intrinsics."""

    letterbox: Letterbox
    source_intrinsics: Intrinsics
    dense: str  # "network" or "source"
    score_threshold: float


# Per task kind: one image's raw output of one head -> the FrameResult's share of it.
Postprocess = Callable[[FrameResult, Task, np.ndarray, Placement], None]


def _segmentation(r: FrameResult, task: Task, out: np.ndarray, p: Placement) -> None:
    r.masks[task.name] = _resize_nearest(np.ascontiguousarray(p.letterbox.content(out)), r.dense_size)


def _depth(r: FrameResult, task: Task, out: np.ndarray, p: Placement) -> None:
    lb = p.letterbox
    opts = DepthOptions.resolve(task.options)  # each depth head with its own canonical camera
    depth = canonical_to_metric(lb.content(out), p.source_intrinsics.fx * lb.new_w / lb.src_w, opts.canonical_fx,
                                opts.max_depth)
    r.depths[task.name] = _resize_nearest(depth, r.dense_size) if p.dense == "source" else depth


def _detection(r: FrameResult, task: Task, out: np.ndarray, p: Placement) -> None:
    r.detections[task.name] = detections_to_source(out, p.letterbox, task.classes, p.score_threshold)


POSTPROCESS: dict[str, Postprocess] = {"segmentation": _segmentation, "depth": _depth, "detection": _detection}


def split_batch(
    outputs: dict[str, np.ndarray],
    contract: ModelContract,
    letterboxes: list[Letterbox],
    intrinsics: list[Intrinsics],
    score_threshold: float,
    dense: str = "network",
) -> list[FrameResult]:
    """The engine's batched outputs -> one FrameResult per image, in each image's own geometry."""
    if dense not in ("network", "source"):
        raise ValueError(f"dense must be 'network' or 'source', got {dense!r}")
    results = []
    for i, (lb, k_src) in enumerate(zip(letterboxes, intrinsics, strict=True)):
        if dense == "network":
            size = (lb.new_w, lb.new_h)
            k_dense = k_src.scaled(lb.new_w / lb.src_w, lb.new_h / lb.src_h)
        else:
            size, k_dense = (lb.src_w, lb.src_h), k_src
        r = FrameResult((lb.src_w, lb.src_h), size, k_dense, k_src)
        placement = Placement(lb, k_src, dense, score_threshold)
        for task in contract.tasks:
            POSTPROCESS[task.type](r, task, outputs[task.name][i], placement)
        if r.depth is not None:
            for boxes in r.detections.values():
                boxes[:] = [with_distance(d, r) for d in boxes]
        results.append(r)
    return results


def detections_to_source(rows: np.ndarray, lb: Letterbox, classes: tuple[str, ...] | list[str],
                         score_threshold: float) -> list[Detection]:
    """[K, 6] rows (x1, y1, x2, y2, score, class) in network pixels -> Detections in source pixels."""
    keep = rows[(rows[:, 4] >= score_threshold) & (rows[:, 4] > 0)]
    boxes = lb.boxes_to_source(keep[:, :4])
    out = []
    for (x1, y1, x2, y2), score, cls in zip(boxes, keep[:, 4], keep[:, 5].astype(int), strict=True):
        if x2 <= x1 or y2 <= y1:
            continue  # entirely inside the padding: clipping left nothing of it on the camera image
        label = classes[cls] if 0 <= cls < len(classes) else str(cls)
        out.append(Detection(float(x1), float(y1), float(x2), float(y2), float(score), int(cls), label))
    return out


def box_distance(depth: np.ndarray, box_dense: tuple[float, float, float, float]) -> float | None:
    """Median finite depth over the central half of a box (dense pixels): the object, not its surroundings."""
    x1, y1, x2, y2 = box_dense
    w, h = x2 - x1, y2 - y1
    h_img, w_img = depth.shape
    c0, c1 = int(max(0, x1 + w / 4)), int(min(w_img, np.ceil(x2 - w / 4)))
    r0, r1 = int(max(0, y1 + h / 4)), int(min(h_img, np.ceil(y2 - h / 4)))
    patch = depth[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)]
    finite = patch[np.isfinite(patch)]
    return float(np.median(finite)) if finite.size else None


def with_distance(d: Detection, r: FrameResult) -> Detection:
    assert r.depth is not None
    sx, sy = r.dense_size[0] / r.source_size[0], r.dense_size[1] / r.source_size[1]
    dist = box_distance(r.depth, (d.x1 * sx, d.y1 * sy, d.x2 * sx, d.y2 * sy))
    return Detection(d.x1, d.y1, d.x2, d.y2, d.score, d.class_index, d.label, dist, "depth" if dist else "")


def box_position(d: Detection, k: Intrinsics) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
    """The box centre back-projected to its distance: ((x, y, z), (width, height, depth)) in metres in the
    camera's optical frame (x right, y down, z forward). The object's extent along z is unknown; its width stands
    in for it. None without a distance."""
    if d.distance is None:
        return None
    z = d.distance
    u, v = (d.x1 + d.x2) / 2.0, (d.y1 + d.y2) / 2.0
    width, height = (d.x2 - d.x1) * z / k.fx, (d.y2 - d.y1) * z / k.fy
    return ((u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z), (width, height, width)


def depth_to_points(depth: np.ndarray, k: Intrinsics, stride: int = 1,
                    rgb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Depth (dense) -> (N, 3) float32 points in the optical frame, finite pixels only, every `stride`-th pixel;
    with `rgb` (same size as depth), the (N,) uint32 0x00RRGGBB colours too (PointCloud2's packed rgb field)."""
    d = depth[::stride, ::stride]
    v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride].astype(np.float32)
    ok = np.isfinite(d)
    z = d[ok]
    pts = np.stack([(u[ok] - k.cx) * z / k.fx, (v[ok] - k.cy) * z / k.fy, z], axis=1).astype(np.float32)
    if rgb is None:
        return pts, None
    c = rgb[::stride, ::stride][ok].astype(np.uint32)
    return pts, (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
