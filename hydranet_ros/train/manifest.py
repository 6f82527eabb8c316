"""The dataset manifest: one JSON object per line, one line per image, labels optional per task.

    {"image": "rgb/000001.jpg",                        # relative to the manifest's folder, or absolute
     "size": [640, 384],                                 # width, height of the image (optional, checked if given)
     "intrinsics": [554.26, 554.26, 320.0, 192.0],       # fx, fy, cx, cy in this image's pixels (optional)
     "source": "sim",                                    # free text: where the frame came from (optional)
     "labels": {                                         # keyed by the model's task (head) names
        "drivable_area": {"file": "semantic/000001.png", "map": {"1": 1, "2": 1}, "default": 0},
        "lane_lines":    {"file": "pseudo/lane/000001.png"},
        "depth":         {"file": "depth/000001.png"},
        "detections":    {"boxes": [[x1, y1, x2, y2, "vehicle"], [x1, y1, x2, y2, "pedestrian", 0.81]]}
     }}

Label kinds, by what the task's head is:
- segmentation: a single-channel PNG (8 or 16 bit) of class ids at the image's resolution; 255 = ignore. With
  "map", each PNG value is looked up ({"value": class id}) and values not in the map take "default" (255 when
  not given), so one semantic PNG can feed several tasks without copies.
- depth: a uint16 PNG, metres x 256, 0 = no measurement (sparse LiDAR, sky). The depth is in this image's camera,
  so a depth label needs "intrinsics" (the trainer converts it to the head's canonical focal length).
- detection: "boxes", inline [x1, y1, x2, y2, class name(, score)] in this image's pixels. An empty list means "there
  is nothing of these classes in this image" (every location is a negative), which is different from the task being
  absent. Class names outside the head's classes are dropped at load time; "ignore" marks a region that is neither
  positive nor negative (e.g. a truncated vehicle with no box).

A task missing from "labels" is unlabelled for that image: it contributes no loss and no gradient.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IGNORE_INDEX = 255
IGNORE_CLASS = "ignore"
# Set (to where the decision was made) on every sample reserved for evaluation; the trainer refuses such samples.
HELD_OUT_KEY = "held_out"
LABEL_KINDS = ("file", "boxes")


class ManifestError(ValueError):
    """A manifest line that cannot be used, with the file and line number in the message."""


@dataclass
class Sample:
    """One manifest line, paths resolved against the manifest's folder."""

    image: Path
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    intrinsics: tuple[float, float, float, float] | None = None
    size: tuple[int, int] | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        """The manifest object; paths relative to `root` where they lie under it."""

        def rel(p: Path) -> str:
            if root is not None:
                try:
                    return Path(p).resolve().relative_to(Path(root).resolve()).as_posix()
                except ValueError:
                    pass
            return str(Path(p).resolve())

        out: dict[str, Any] = {"image": rel(self.image)}
        if self.size is not None:
            out["size"] = list(self.size)
        if self.intrinsics is not None:
            out["intrinsics"] = [round(float(v), 4) for v in self.intrinsics]
        if self.source:
            out["source"] = self.source
        labels = {}
        for task, label in self.labels.items():
            label = dict(label)
            if "file" in label:
                label["file"] = rel(Path(label["file"]))
            labels[task] = label
        out["labels"] = labels
        out.update(self.extra)
        return out


def _check_label(task: str, label: Any, where: str) -> None:
    if not isinstance(label, dict) or sum(k in label for k in LABEL_KINDS) != 1:
        raise ManifestError(f"{where}: label {task!r} needs exactly one of 'file' or 'boxes', got {label!r}")
    if "boxes" in label:
        boxes = label["boxes"]
        if not isinstance(boxes, list):
            raise ManifestError(f"{where}: {task}.boxes must be a list")
        for b in boxes:
            ok = (isinstance(b, list) and len(b) in (5, 6) and all(isinstance(v, (int, float)) for v in b[:4])
                  and isinstance(b[4], str) and (len(b) == 5 or isinstance(b[5], (int, float))))
            if not ok:
                raise ManifestError(f"{where}: {task} box {b!r} is not [x1, y1, x2, y2, class(, score)]")
            if not (b[2] >= b[0] and b[3] >= b[1]):
                raise ManifestError(f"{where}: {task} box {b!r} has x2 < x1 or y2 < y1")
    if "map" in label and not (isinstance(label["map"], dict)
                               and all(isinstance(v, int) for v in label["map"].values())):
        raise ManifestError(f"{where}: {task}.map must map PNG values (as strings) to class ids")


def parse_line(obj: Any, root: Path, where: str) -> Sample:
    """One decoded manifest object -> Sample (paths resolved against `root`); ManifestError says what is wrong."""
    if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
        raise ManifestError(f"{where}: each line must be an object with an 'image' path")
    labels = obj.get("labels", {})
    if not isinstance(labels, dict):
        raise ManifestError(f"{where}: 'labels' must be an object keyed by task name")
    resolved: dict[str, dict[str, Any]] = {}
    for task, label in labels.items():
        _check_label(task, label, where)
        label = dict(label)
        if "file" in label:
            label["file"] = root / label["file"]
        resolved[task] = label
    intr = obj.get("intrinsics")
    if intr is not None and not (isinstance(intr, list) and len(intr) == 4 and all(
            isinstance(v, (int, float)) and v > 0 for v in intr[:2])):
        raise ManifestError(f"{where}: intrinsics must be [fx, fy, cx, cy] with fx, fy > 0")
    size = obj.get("size")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and v > 0 for v in size)):
        raise ManifestError(f"{where}: size must be [width, height]")
    known = {"image", "labels", "intrinsics", "size", "source"}
    return Sample(
        image=root / obj["image"],
        labels=resolved,
        intrinsics=tuple(float(v) for v in intr) if intr else None,
        size=tuple(size) if size else None,
        source=str(obj.get("source", "")),
        extra={k: v for k, v in obj.items() if k not in known},
    )


def read_manifest(path: str | Path) -> list[Sample]:
    """All samples of a manifest; blank lines and lines starting with '#' are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    root = path.parent
    samples = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where}: not JSON ({exc})") from exc
        samples.append(parse_line(obj, root, where))
    return samples


def write_manifest(path: str | Path, samples: Iterable[Sample]) -> int:
    """Write samples as JSONL, paths relative to the manifest's folder where possible; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w") as f:
        for s in samples:
            f.write(json.dumps(s.to_json(path.parent), separators=(",", ":")) + "\n")
            n += 1
    return n


def iter_manifests(paths: Iterable[str | Path]) -> Iterator[Sample]:
    for p in paths:
        yield from read_manifest(p)


# --- reading labels (numpy only: shared by the trainer, `hydranet eval` and the importers' tests) ------------------


def read_segmentation(label: dict[str, Any]) -> Any:
    """A segmentation label -> uint8 class ids [H, W] (255 = ignore), with the label's "map" applied."""
    import cv2
    import numpy as np

    path = Path(label["file"])
    png = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if png is None:
        raise ManifestError(f"cannot read segmentation label {path}")
    if png.ndim == 3:
        raise ManifestError(f"segmentation label {path} has {png.shape[2]} channels; it must be single-channel ids")
    mapping = label.get("map")
    if mapping is None:
        if png.max(initial=0) > IGNORE_INDEX:
            raise ManifestError(f"segmentation label {path} has ids > 255 and no 'map'")
        return png.astype(np.uint8)
    lut = np.full(max(int(png.max(initial=0)) + 1, 256) if png.dtype == np.uint8 else 65536,
                  int(label.get("default", IGNORE_INDEX)), dtype=np.uint8)
    for value, cls in mapping.items():
        v = int(value)
        if 0 <= v < len(lut):
            lut[v] = cls
    return lut[png]


def read_depth(label: dict[str, Any]) -> Any:
    """A depth label -> float32 metres [H, W], 0 where there is no measurement."""
    import cv2
    import numpy as np

    path = Path(label["file"])
    png = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if png is None:
        raise ManifestError(f"cannot read depth label {path}")
    if png.dtype != np.uint16 or png.ndim != 2:
        raise ManifestError(f"depth label {path} must be a single-channel uint16 PNG (metres x 256), "
                            f"got {png.dtype} with shape {png.shape}")
    return png.astype(np.float32) / 256.0


def read_boxes(label: dict[str, Any], classes: list[str] | tuple[str, ...]) -> tuple[Any, Any]:
    """A detection label -> (boxes float32 [N, 5] x1 y1 x2 y2 class-id, ignore regions float32 [M, 4]).

    Boxes of classes the head does not have are dropped; "ignore" boxes become don't-care regions. Scores, where
    a pseudo-label carries them, are not used here (the pseudo-labeller already thresholded them)."""
    import numpy as np

    index = {c: i for i, c in enumerate(classes)}
    boxes, ignore = [], []
    for b in label["boxes"]:
        if b[4] == IGNORE_CLASS:
            ignore.append([float(v) for v in b[:4]])
        elif b[4] in index:
            boxes.append([float(v) for v in b[:4]] + [float(index[b[4]])])
    return (np.asarray(boxes, dtype=np.float32).reshape(-1, 5), np.asarray(ignore, dtype=np.float32).reshape(-1, 4))
