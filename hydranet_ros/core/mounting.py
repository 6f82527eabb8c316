"""Where a camera sits on the vehicle, and what that says about the road in its image (numpy only).

Frames (REP 103 / REP 105):
- `base_frame` (e.g. base_link): x forward, y left, z up; z = 0 is the road plane under the vehicle.
- the camera's body frame: x forward, y left, z up; a mounting `[x, y, z, roll, pitch, yaw]` is its pose in
  base_frame (metres; radians, fixed axes: R = Rz(yaw) Ry(pitch) Rx(roll), so a positive pitch looks down).
- the camera's optical frame (the images' header.frame_id): z forward along the optical axis, x right, y down.

`Mounting` holds the optical frame's pose in base_frame. A pixel's ray meets the flat road at a depth that only the
mounting and the intrinsics decide: `ground_depth` is that depth (along the optical axis, as depth images are) for
every pixel, +inf where the ray never reaches the road. This is what anchors the network's depth to metres
(runtime/road_scale.py) and places a box's ground contact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hydranet_ros.core.geometry import Intrinsics

# Optical axes in the body frame: optical z = body x (forward), optical x = -body y (right), optical y = -body z.
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
MAX_HEIGHT_M = 10.0  # above this a "camera" is a mast or a mistake in units
MAX_UPWARD_DEG = 20.0  # an optical axis further above the horizon sees mostly sky: no road to anchor anything to


class MountingError(ValueError):
    """A mounting that cannot be right; the message says which value and why."""


def rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll): the ROS / URDF fixed-axis convention."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def rotation_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """The rotation of a unit quaternion (geometry_msgs/Quaternion order); MountingError if not finite or zero."""
    q = np.array([x, y, z, w], dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(q).all() or n < 1e-9:
        raise MountingError(f"quaternion {q.tolist()} is not a rotation")
    x, y, z, w = q / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def quaternion_of(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """The unit quaternion (x, y, z, w; w >= 0) of a rotation matrix: `rotation_quaternion`'s inverse."""
    m = np.asarray(rotation, np.float64)
    # Shepperd's method: take the largest of w, x, y, z from the diagonal, the others from off-diagonal sums.
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    i = int(np.argmax([trace, m[0, 0], m[1, 1], m[2, 2]]))
    if i == 0:
        s = 2.0 * math.sqrt(max(1e-12, 1.0 + trace))
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif i == 1:
        s = 2.0 * math.sqrt(max(1e-12, 1.0 + m[0, 0] - m[1, 1] - m[2, 2]))
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif i == 2:
        s = 2.0 * math.sqrt(max(1e-12, 1.0 - m[0, 0] + m[1, 1] - m[2, 2]))
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(max(1e-12, 1.0 - m[0, 0] - m[1, 1] + m[2, 2]))
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    v = np.array(q) / np.linalg.norm(q)
    if v[3] < 0:
        v = -v
    return float(v[0]), float(v[1]), float(v[2]), float(v[3])


@dataclass(frozen=True)
class Mounting:
    """The camera's optical frame in base_frame: p_base = rotation @ p_optical + translation."""

    rotation: np.ndarray  # 3x3
    translation: np.ndarray  # 3
    source: str = "parameter"  # where it came from: "tf" or "parameter"

    def __post_init__(self) -> None:
        r, t = np.asarray(self.rotation, np.float64), np.asarray(self.translation, np.float64)
        if r.shape != (3, 3) or t.shape != (3,) or not (np.isfinite(r).all() and np.isfinite(t).all()):
            raise MountingError(f"a mounting needs a finite 3x3 rotation and 3-vector, got {r.tolist()}, {t.tolist()}")
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation", t)
        if not 0.0 < self.height <= MAX_HEIGHT_M:
            raise MountingError(f"the camera would be {self.height:.2f} m above the road: it must be above it (z > 0 "
                                f"in base_frame, whose z = 0 is the road) and at most {MAX_HEIGHT_M:g} m up")
        if self.pitch_deg < -MAX_UPWARD_DEG:
            raise MountingError(f"the camera would look {-self.pitch_deg:.0f} deg above the horizon (at the sky); "
                                f"at most {MAX_UPWARD_DEG:g} deg up is accepted. Is pitch's sign right? Positive "
                                "pitch looks down (REP 103)")

    @classmethod
    def from_pose(cls, pose: Sequence[float], source: str = "parameter") -> Mounting:
        """From the body frame's pose [x, y, z, roll, pitch, yaw] in base_frame (the `mounting` parameter)."""
        values = [float(v) for v in pose]
        if len(values) != 6 or not all(math.isfinite(v) for v in values):
            raise MountingError(f"mounting must be [x, y, z, roll, pitch, yaw] (six finite numbers: metres, radians), "
                                f"got {list(pose)}")
        x, y, z, roll, pitch, yaw = values
        return cls(rotation_rpy(roll, pitch, yaw) @ BODY_FROM_OPTICAL, np.array([x, y, z]), source)

    @classmethod
    def from_transform(cls, translation: Sequence[float], quaternion: Sequence[float], source: str = "tf") -> Mounting:
        """From the optical frame's transform in base_frame (what TF's base_frame -> image frame_id chain gives)."""
        return cls(rotation_quaternion(*quaternion), np.asarray(translation, np.float64), source)

    @property
    def height(self) -> float:
        """Metres of the optical centre above the road."""
        return float(self.translation[2])

    @property
    def pitch_deg(self) -> float:
        """Angle of the optical axis below the horizon (degrees; negative: above it)."""
        axis = self.rotation[:, 2]
        return math.degrees(math.asin(max(-1.0, min(1.0, -axis[2]))))

    def rays(self, k: Intrinsics, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """[..., 3] directions in base_frame of the rays through pixels (u, v), scaled to optical depth 1."""
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        d_opt = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)], axis=-1)
        return d_opt @ self.rotation.T

    def ground_depths(self, k: Intrinsics, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The optical depth at which each ray through (u, v) meets the road plane; +inf where it does not (at and
        above the horizon)."""
        dz = self.rays(k, u, v)[..., 2]
        with np.errstate(divide="ignore"):
            return np.where(dz < -1e-9, -self.height / dz, np.inf)

    def ground_depth(self, k: Intrinsics, size: tuple[int, int]) -> np.ndarray:
        """float32 [H, W]: `ground_depths` of every pixel centre of a `size` image."""
        w, h = size
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        return self.ground_depths(k, u, v).astype(np.float32)

    def ground_depth_at(self, k: Intrinsics, u: float, v: float) -> float:
        """The optical depth of the road under pixel (u, v) (e.g. a box's bottom edge); +inf above the horizon."""
        return float(self.ground_depths(k, np.array(u), np.array(v)))

    def ground_points(self, k: Intrinsics, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """[N, 2] (x, y) in base_frame where the rays through pixels (u, v) meet the road; rays that never do are
        left out."""
        d = self.rays(k, u, v).reshape(-1, 3)
        down = d[:, 2] < -1e-9
        return self.translation[:2] + d[down, :2] * (-self.height / d[down, 2])[:, None]

    def transform(self) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
        """(translation, quaternion xyzw) of the optical frame in base_frame: the TF transform base_frame -> the
        images' frame_id that states this mounting."""
        x, y, z = (float(v) for v in self.translation)
        return (x, y, z), quaternion_of(self.rotation)

    def describe(self) -> str:
        return f"{self.source}: {self.height:.2f} m above the road, pitch {self.pitch_deg:+.1f} deg"


class TransformGraph:
    """The latest transform of every parent -> child edge of /tf and /tf_static, and the pose of one frame in
    another along the tree's edges (numpy; no tf2: a camera's mounting needs no interpolation in time, since it
    moves at most slowly against base_frame, so the newest transform of each edge is used)."""

    def __init__(self) -> None:
        self._edges: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}  # child -> (parent, rotation, translation)
        self.rejected = 0  # transforms with NaN or a zero quaternion: ignored

    def set(self, parent: str, child: str, translation: Sequence[float], quaternion: Sequence[float]) -> bool:
        """Store the edge; False (and counted) where it is not a finite rigid transform."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        t = np.asarray(translation, np.float64)
        try:
            r = rotation_quaternion(*quaternion)
        except MountingError:
            r = None
        if r is None or not np.isfinite(t).all() or not parent or not child or parent == child:
            self.rejected += 1
            return False
        self._edges[child] = (parent, r, t)
        return True

    def has_parent(self, frame: str) -> bool:
        return frame.lstrip("/") in self._edges

    def _to_root(self, frame: str) -> list[str]:
        chain, seen = [frame], {frame}
        while chain[-1] in self._edges:
            parent = self._edges[chain[-1]][0]
            if parent in seen:  # a cycle: a broken tree, not ours to resolve
                break
            chain.append(parent)
            seen.add(parent)
        return chain

    def _pose_in(self, chain: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Pose of chain[0] in chain[-1]."""
        r, t = np.eye(3), np.zeros(3)
        for child in chain[:-1]:
            _, r_e, t_e = self._edges[child]
            r, t = r_e @ r, r_e @ t + t_e
        return r, t

    def lookup(self, target: str, source: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The pose of `source` in `target` (p_target = R p_source + t), or None when they are not connected."""
        target, source = target.lstrip("/"), source.lstrip("/")
        up_source, up_target = self._to_root(source), self._to_root(target)
        common = next((f for f in up_source if f in set(up_target)), None)
        if common is None:
            return None
        r_s, t_s = self._pose_in(up_source[: up_source.index(common) + 1])  # source in common
        r_t, t_t = self._pose_in(up_target[: up_target.index(common) + 1])  # target in common
        return r_t.T @ r_s, r_t.T @ (t_s - t_t)

    def mounting(self, base_frame: str, camera_frame: str) -> Mounting | None:
        """The mounting of the camera whose images carry `camera_frame` (its optical frame), from TF; None when
        TF has no path from base_frame to it. MountingError when the path gives an impossible mounting."""
        pose = self.lookup(base_frame, camera_frame)
        return None if pose is None else Mounting(pose[0], pose[1], "tf")
