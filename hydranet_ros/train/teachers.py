"""Teacher models for pseudo-labels: ONNX Runtime on the CPU, numpy + OpenCV around it, no torch.

Every teacher takes an RGB uint8 [H, W, 3] frame of any size and answers in that frame's pixels:
- `TwinLiteNet`: drivable-area and lane-line probabilities [H, W] (BDD100K-trained);
- `FastestDet`, `PicoDetS`: COCO boxes (`Detections`, class names from coco80.names).
`ClassMapping` turns COCO boxes into the road classes (vehicle, pedestrian, cyclist), `RoadDetector` runs one or
both detectors through it, and `label_boxes` / `probability_to_label` turn confidences into manifest labels with a
don't-care band, so that what a teacher is unsure of is neither a positive nor a negative for the student.

The input formats and output layouts are those of ../shared/assets/MANIFEST.md ("weights/", "teachers/"); the
decoders follow the models' reference code (dog-qiuqiu/FastestDet example/onnx-runtime/runtime.py,
hpc203/picodet-onnxruntime main.py), PicoDet's input follows PaddleDetection (see PicoDetS).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hydranet_ros.core import cpu_threads
from hydranet_ros.train.manifest import IGNORE_CLASS, IGNORE_INDEX
from hydranet_ros.train.metrics import box_iou

ASSETS_ENV = "HYDRANET_ASSETS"
REPO_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the hydranet_ros package

# Teacher files, relative to the assets folder.
ASSET_FILES: dict[str, str] = {
    "twinlitenet": "weights/twinlitenet_da_ll_dynamic.onnx",
    "fastestdet": "teachers/fastestdet/FastestDet.onnx",
    "picodet": "teachers/picodet_s/picodet_s_416_coco_clean.onnx",
    "coco_names": "teachers/coco80.names",
}

# TwinLiteNet decides by argmax, i.e. p = 0.5. Pixels within 0.1 of that are where it hesitates: a 1-2 px rim
# along region borders and lane-line edges, shadows, far road. Marking them ignore keeps the student off coin flips
# while leaving ~all confident pixels labelled; a wider band would eat the thin, far lane lines.
SEG_HI = 0.6
SEG_LO = 0.4

# Detection score bands (see label_boxes). On the Udacity and BDD frames every clearly visible car scores >= 0.5
# with both detectors (mostly 0.7-0.95); 0.3-0.5 holds far, small, truncated or occluded cars mixed with mistakes
# (a sign called a person, half a car): as don't-care regions they are neither false positives nor negatives.
DET_THRESHOLD = 0.5
DET_LOW_THRESHOLD = 0.3
NMS_IOU = 0.5
TILE_MIN_ASPECT = 1.4  # CocoDetector tiles only frames wider than this (a 4:3 frame is squashed little)
TILE_EDGE_MARGIN = 0.02  # of a crop's side: a box this close to an inner crop edge is a cut-off part

# COCO -> road classes. coco80.names spells it "motorbike" (darknet naming); "motorcycle" is the COCO API's.
DEFAULT_CLASS_MAP: dict[str, str] = {
    "car": "vehicle", "bus": "vehicle", "truck": "vehicle",
    "person": "pedestrian",
    "bicycle": "cyclist", "motorbike": "cyclist", "motorcycle": "cyclist",
}
RIDER = "person"
RIDDEN = ("bicycle", "motorbike", "motorcycle")


class TeacherError(Exception):
    """A teacher that cannot be used (missing or unreadable file); the message says which and why."""


class TeacherFileError(TeacherError, FileNotFoundError):
    """A teacher file that is not there; the message names the file and how to point at it."""


# --- files -------------------------------------------------------------------------------------------------------


def assets_dir() -> Path:
    """$HYDRANET_ASSETS, else ../shared/assets beside the repo (where the development assets live)."""
    env = os.environ.get(ASSETS_ENV)
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "assets"


def default_asset(key: str, assets: Path | None = None) -> Path:
    """The default location of a teacher file: `key` is one of ASSET_FILES."""
    return (assets if assets is not None else assets_dir()) / ASSET_FILES[key]


def require_file(path: str | Path, hint: str) -> Path:
    """`path`, or TeacherFileError naming the file, with `hint` saying how to point at another one."""
    path = Path(path)
    if not path.is_file():
        raise TeacherFileError(f"teacher file not found: {path} ({hint})")
    return path


def load_names(path: str | Path) -> list[str]:
    """Class names, one a line, in index order."""
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path} holds no class names")
    return names


def read_rgb(path: str | Path) -> np.ndarray | None:
    """An image file as RGB uint8 [H, W, 3], or None when it is missing or OpenCV cannot decode it."""
    if not Path(path).is_file():
        return None  # checked first: OpenCV would log a warning of its own for every missing file
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def open_session(path: str | Path, threads: int = 2, optimization: str = "all") -> Any:
    """An ONNX Runtime CPU session of a teacher; `optimization`: ONNX Runtime's graph optimisation level (all,
    extended, basic), the one each teacher runs fastest at."""
    import onnxruntime as ort

    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = levels[optimization]
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Teachers run interleaved (TwinLiteNet, then a detector): threads spin-waiting after one session's run would
    # steal the next one's cores (core/cpu_threads.py).
    cpu_threads.configure(opts)
    # The exports carry unused initializers and ORT warns about each one at load; nothing is wrong with them.
    opts.log_severity_level = 3
    if not Path(path).is_file():
        raise TeacherFileError(f"teacher file not found: {path}")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's errors share no base class but Exception
        raise TeacherError(f"cannot load teacher {path}: {exc}") from exc


# --- boxes -------------------------------------------------------------------------------------------------------


@dataclass
class Detections:
    """Boxes in source pixels: boxes float32 [N, 4] x1 y1 x2 y2, scores float32 [N], classes str [N]."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, "<U1"))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.classes = np.asarray(self.classes, dtype=str).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.classes):
            raise ValueError("boxes, scores and classes differ in length")

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: Any) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.classes[index])

    @classmethod
    def concat(cls, parts: Iterable[Detections]) -> Detections:
        parts = list(parts)
        if not parts:
            return cls()
        return cls(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.classes for p in parts]))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, best first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[box_iou(boxes[best], boxes[order])[0] < iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def class_nms(dets: Detections, iou_threshold: float) -> Detections:
    """NMS within each class (a bus and a person may overlap; two cars on one car may not), best first."""
    keep = [np.flatnonzero(dets.classes == c)[nms(dets.boxes[dets.classes == c], dets.scores[dets.classes == c],
                                                  iou_threshold)] for c in np.unique(dets.classes)]
    index = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    return dets.take(index[np.argsort(-dets.scores[index], kind="stable")])


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --- teachers ----------------------------------------------------------------------------------------------------


class Teacher:
    """An ONNX Runtime session that times itself: `ms_per_image` is preprocessing + inference + decoding."""

    name = "teacher"
    optimization = "all"  # ONNX Runtime's graph optimisation level this teacher is fastest at (open_session)

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads, self.optimization)
        self.input_name = self.session.get_inputs()[0].name
        self.calls = 0
        self.first_seconds = 0.0  # the first call: ORT allocates and picks kernels, several times a steady call
        self.seconds = 0.0  # the calls after it

    def __call__(self, rgb: np.ndarray) -> Any:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"{self.name} takes RGB uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
        t0 = time.perf_counter()
        out = self.predict(rgb)
        if self.calls:
            self.seconds += time.perf_counter() - t0
        else:
            self.first_seconds = time.perf_counter() - t0
        self.calls += 1
        return out

    def predict(self, rgb: np.ndarray) -> Any:
        raise NotImplementedError

    @property
    def ms_per_image(self) -> float:
        """Mean milliseconds of a steady call (the first one counts only while it is the only one)."""
        if self.calls > 1:
            return 1000.0 * self.seconds / (self.calls - 1)
        return 1000.0 * self.first_seconds if self.calls else float("nan")

    def describe(self) -> dict[str, Any]:
        """What a pseudo-label records about its teacher."""
        return {"teacher": self.name, "file": self.path.name}


class TwinLiteNet(Teacher):
    """Drivable area and lane lines: `teacher(rgb)` -> {"drivable": p, "lane": p}, class-1 probabilities
    float32 [H, W] at the source size. `size` is the network input (W, H); it was trained at 640x360."""

    name = "twinlitenet"
    outputs = ("drivable", "lane")
    # Its dilated convolutions are 1.7x slower in the blocked (NCHWc) layout that level "all" converts them to:
    # 234 ms against 399 ms per 640x360 frame on the 2-core CPU (the detectors are fastest at "all").
    optimization = "extended"

    def __init__(self, path: str | Path, size: tuple[int, int] = (640, 360), threads: int = 2) -> None:
        super().__init__(path, threads)
        self.size = (int(size[0]), int(size[1]))
        self.output_names = [o.name for o in self.session.get_outputs()]

    def predict(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        height, width = rgb.shape[:2]
        x = cv2.resize(rgb, self.size, interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        outs = self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None]})
        outs = dict(zip(self.output_names, outs, strict=True))
        probs = {}
        for task in self.outputs:
            logits = outs[task][0]
            p = _sigmoid(logits[1] - logits[0]).astype(np.float32)  # 2-class softmax, class 1
            # Resize probabilities, not labels: the thresholds then cut smooth borders at the source resolution.
            probs[task] = cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)
        return probs

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "input": list(self.size)}


def probability_to_label(prob: np.ndarray, hi: float = SEG_HI, lo: float = SEG_LO) -> np.ndarray:
    """Probabilities [H, W] -> uint8 label: 1 where p >= hi, 0 where p <= lo, 255 (ignore) between."""
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"need 0 <= lo <= hi <= 1, got lo={lo} hi={hi}")
    label = np.full(prob.shape, IGNORE_INDEX, dtype=np.uint8)
    label[prob <= lo] = 0
    label[prob >= hi] = 1
    return label


class CocoDetector(Teacher):
    """A COCO detector: `teacher(rgb)` -> Detections with COCO names, score >= min_score, NMS per class."""

    input_size = 0

    def __init__(self, path: str | Path, names: Sequence[str], threads: int = 2, min_score: float = DET_LOW_THRESHOLD,
                 nms_iou: float = NMS_IOU, tiles: int = 0) -> None:
        super().__init__(path, threads)
        if tiles < 0 or tiles == 1:
            raise ValueError(f"tiles must be 0 (off) or >= 2, got {tiles}")
        self.names = np.asarray(list(names), dtype=str)
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.tiles = tiles

    def predict(self, rgb: np.ndarray) -> Detections:
        """The whole frame; with `tiles` on a frame wider than TILE_MIN_ASPECT, also that many overlapping square
        crops across its width. The square input squashes a wide frame (KITTI's 3.3:1 makes a person a third as
        wide and as tall as a 416 px network sees best), so small people are found in the crops at their own
        shape; the whole frame keeps the objects larger than a crop's overlap."""
        dets = self._window(rgb)
        height, width = rgb.shape[:2]
        if self.tiles and width > TILE_MIN_ASPECT * height:
            dets = class_nms(Detections.concat([dets, *self._tiled(rgb)]), self.nms_iou)
        return dets

    def _tiled(self, rgb: np.ndarray) -> Iterator[Detections]:
        height, width = rgb.shape[:2]
        side = height
        margin = TILE_EDGE_MARGIN * side
        for x0 in np.linspace(0, width - side, self.tiles).round().astype(int):
            d = self._window(rgb[:, x0:x0 + side])
            boxes = d.boxes + np.array([x0, 0, x0, 0], np.float32)
            # A box at an inner edge of a crop is a part of an object: the overlapping crop or the whole frame
            # sees all of it.
            inner_left, inner_right = x0 > 0, x0 + side < width
            cut = ((boxes[:, 0] <= x0 + margin) & inner_left) | ((boxes[:, 2] >= x0 + side - margin) & inner_right)
            yield Detections(boxes[~cut], d.scores[~cut], d.classes[~cut])

    def _window(self, rgb: np.ndarray) -> Detections:
        height, width = rgb.shape[:2]
        # A plain resize (no letterbox) with INTER_AREA, as both reference demos; on 16:9 road frames it also finds
        # more cars than a letterbox would, which makes every object 44 % shorter.
        x = cv2.resize(rgb, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA)
        outputs = self.session.run(None, {self.input_name: self.normalise(x).transpose(2, 0, 1)[None]})
        boxes, scores, ids = self.decode(outputs)
        # Network boxes are in [0, 1] of the square input; a plain resize maps them to the source by x W, y H.
        boxes = _clip(boxes * np.array([width, height, width, height], np.float32), width, height)
        return class_nms(Detections(boxes, scores, self.names[ids]), self.nms_iou)

    def normalise(self, rgb: np.ndarray) -> np.ndarray:
        """The resized RGB uint8 [S, S, 3] -> the network's float [S, S, C] (channel order and scaling)."""
        raise NotImplementedError

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network outputs -> (boxes [N, 4] normalised to the input, scores [N], class ids [N])."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "min_score": self.min_score, "nms_iou": self.nms_iou, "tiles": self.tiles}


class FastestDet(CocoDetector):
    """FastestDet (0.24 M params): 352x352 BGR / 255 -> one 22x22 grid of [obj, dx, dy, w, h, 80 classes]."""

    name = "fastestdet"
    input_size = 352

    def normalise(self, rgb: np.ndarray) -> np.ndarray:
        # BGR: its trainer feeds cv2.imread's pixels unconverted (utils/datasets.py), and so does its demo.
        return rgb[..., ::-1].astype(np.float32) / 255.0

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return decode_fastestdet(outputs[0][0], self.min_score)


def decode_fastestdet(grid: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[85, H, W] -> boxes normalised to the input, scores, class ids.

    The graph already applies sigmoid to obj and softmax to the classes (module/custom_layers.py DetectHead).
    One box per cell: centre ((col + tanh dx) / W, (row + tanh dy) / H) -- the cell's corner plus an offset in
    (-1, 1), no half-cell shift -- and size (sigmoid w, sigmoid h) of the whole input; score obj^0.6 * cls^0.4."""
    _, gh, gw = grid.shape
    cls = grid[5:]
    ids = cls.argmax(axis=0)
    score = grid[0] ** 0.6 * cls.max(axis=0) ** 0.4
    rows, cols = np.nonzero(score >= min_score)
    cx = (cols + np.tanh(grid[1, rows, cols])) / gw
    cy = (rows + np.tanh(grid[2, rows, cols])) / gh
    half_w, half_h = _sigmoid(grid[3, rows, cols]) / 2, _sigmoid(grid[4, rows, cols]) / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    return boxes.astype(np.float32), score[rows, cols].astype(np.float32), ids[rows, cols]


class PicoDetS(CocoDetector):
    """PicoDet-S 416 (PaddleDetection export): per-anchor sigmoid class scores and DFL side distances, 4 strides.

    Fed RGB with the ImageNet mean/std in RGB order, as PaddleDetection trains and tests it (its Decode op converts
    to RGB; picodet_416_reader.yml normalises with mean [0.485, 0.456, 0.406]). hpc203's demo, and MANIFEST.md after
    it, feed BGR with the same numbers in BGR order: the same statistics on swapped channels, a habit from NanoDet
    (trained on BGR). The model copes with either, but on 39 frames here RGB scores the same objects higher
    (+0.008 on average, 63 % of 106 matched boxes) and finds 115 instead of 110 road objects at score >= 0.5."""

    name = "picodet"
    input_size = 416
    strides = (8, 16, 32, 64)
    reg_max = 7
    mean = np.array([123.675, 116.28, 103.53], np.float32)  # RGB order
    std = np.array([58.395, 57.12, 57.375], np.float32)

    def normalise(self, rgb: np.ndarray) -> np.ndarray:
        return (rgb.astype(np.float32) - self.mean) / self.std

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scores, dists = split_picodet_outputs(outputs, len(self.names), self.reg_max)
        boxes, score, ids = decode_picodet(scores, dists, self.input_size, self.strides, self.reg_max, self.min_score)
        return boxes / self.input_size, score, ids


def split_picodet_outputs(outputs: Sequence[np.ndarray], num_classes: int,
                          reg_max: int) -> tuple[np.ndarray, np.ndarray]:
    """The export's outputs -> (scores [N, C], distances [N, 4 (reg_max + 1)]), anchors in stride order.

    Told apart by shape, not by name or position: this export has one scores and one distances output per stride
    (8 in all), others concatenate the strides (2). Finer strides have more anchors, so sorting by anchor count
    puts them in stride order either way."""
    bins = 4 * (reg_max + 1)
    if num_classes == bins:
        raise ValueError(f"cannot tell scores from distances when both have {bins} channels")
    scores = [o.reshape(-1, num_classes) for o in outputs if o.shape[-1] == num_classes]
    dists = [o.reshape(-1, bins) for o in outputs if o.shape[-1] == bins]
    if not scores or len(scores) != len(dists):
        raise ValueError(f"unexpected PicoDet outputs {[o.shape for o in outputs]}")

    def by_stride(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(sorted(parts, key=len, reverse=True))

    return by_stride(scores), by_stride(dists)


def picodet_anchors(input_size: int, strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Anchor centres [N, 2] (x, y), row-major per stride, at (i * s + (s - 1) / 2), and each anchor's stride."""
    centres, per_anchor = [], []
    for s in strides:
        n = -(-input_size // s)  # ceil: 416 / 64 -> 7 cells
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        centres.append(np.stack([xs.ravel(), ys.ravel()], axis=1) * s + (s - 1) / 2)
        per_anchor.append(np.full(n * n, s))
    return np.concatenate(centres).astype(np.float32), np.concatenate(per_anchor).astype(np.float32)


def decode_picodet(scores: np.ndarray, dists: np.ndarray, input_size: int, strides: Sequence[int], reg_max: int,
                   min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores [N, C] and DFL distances [N, 4 (reg_max + 1)] -> boxes in input pixels, scores, class ids.

    Each side (left, top, right, bottom) is a softmax over reg_max + 1 bins; its distance is the expected bin,
    in strides."""
    centres, stride = picodet_anchors(input_size, strides)
    if len(centres) != len(scores):
        raise ValueError(f"{len(scores)} PicoDet anchors, expected {len(centres)} for {input_size}px and {strides}")
    ids = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), ids]
    keep = np.flatnonzero(best >= min_score)
    logits = dists[keep].reshape(-1, 4, reg_max + 1).astype(np.float64)
    prob = np.exp(logits - logits.max(axis=2, keepdims=True))
    prob /= prob.sum(axis=2, keepdims=True)
    ltrb = (prob @ np.arange(reg_max + 1)) * stride[keep, None]
    c = centres[keep]
    boxes = np.concatenate([c - ltrb[:, :2], c + ltrb[:, 2:]], axis=1)
    return np.clip(boxes, 0, input_size).astype(np.float32), best[keep].astype(np.float32), ids[keep]


# --- COCO -> road classes ----------------------------------------------------------------------------------------


def lower_half_cover(person: np.ndarray, bikes: np.ndarray) -> np.ndarray:
    """The fraction of the person box's lower half that each bike box covers -> [M]."""
    x1, y1, x2, y2 = (float(v) for v in person)
    lower = np.array([[x1, (y1 + y2) / 2, x2, y2]])
    lt = np.maximum(lower[:, :2], bikes[:, :2])
    rb = np.minimum(lower[:, 2:], bikes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    return inter / max((x2 - x1) * (y2 - y1) / 2, 1e-9)


@dataclass(frozen=True)
class ClassMapping:
    """COCO names -> road classes; COCO classes not in `coco` are dropped.

    A rider and the bike under them are one cyclist, not a pedestrian plus a cyclist: a person whose box's lower half
    is covered at least `rider_cover` by a bicycle/motorbike box becomes one box (the union of the two, the class
    the bike maps to, the higher score: a rider hides much of the bike, so either part may carry the evidence).
    Why not IoU: it depends on the view. Seen from behind -- the usual view of a cyclist ahead -- the bike box is
    narrower than the rider and starts at their hips: a 40x100 rider on a 24x55 bike has IoU 0.29, under a 0.3 rule,
    while their legs are 60 % inside the bike box. The legs and hips of a rider are inside the bike's box in every
    view; a pedestrian's are only when they stand in front of or behind it. `rider_cover` 0 turns the merge off."""

    coco: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CLASS_MAP))
    rider_cover: float = 0.5

    @classmethod
    def parse(cls, text: str, rider_cover: float = 0.5) -> ClassMapping:
        """'car=vehicle,bus=vehicle,person=pedestrian' -> ClassMapping (COCO names as in coco80.names)."""
        pairs = [p.strip() for p in text.split(",") if p.strip()]
        if not pairs or not all(p.count("=") == 1 and all(p.split("=")) for p in pairs):
            raise ValueError(f"class map {text!r} is not COCO=ours,COCO=ours,...")
        return cls({k.strip(): v.strip() for k, v in (p.split("=") for p in pairs)}, rider_cover)

    def merge_riders(self, dets: Detections) -> tuple[Detections, Detections]:
        """COCO detections -> (the detections no rider merge touched, the merged cyclists in COCO-bike class)."""
        if self.rider_cover <= 0:
            return dets, Detections()
        persons = [i for i in np.argsort(-dets.scores, kind="stable") if dets.classes[i] == RIDER]
        bikes = [i for i in range(len(dets)) if dets.classes[i] in RIDDEN and dets.classes[i] in self.coco]
        used, merged = set(), []
        for p in persons:  # the most confident persons choose their bike first
            free = [b for b in bikes if b not in used]
            if not free:
                break
            cover = lower_half_cover(dets.boxes[p], dets.boxes[free])
            if cover.max() >= self.rider_cover:
                b = free[int(cover.argmax())]
                used.update((p, b))
                box = np.concatenate([np.minimum(dets.boxes[p, :2], dets.boxes[b, :2]),
                                      np.maximum(dets.boxes[p, 2:], dets.boxes[b, 2:])])
                merged.append((box, max(dets.scores[p], dets.scores[b]), dets.classes[b]))
        rest = dets.take(np.array([i for i in range(len(dets)) if i not in used], dtype=np.int64))
        if not merged:
            return rest, Detections()
        boxes, scores, classes = zip(*merged, strict=True)
        return rest, Detections(np.stack(boxes), scores, classes)

    def apply(self, dets: Detections) -> Detections:
        """COCO detections -> road-class detections (riders merged, unmapped classes dropped)."""
        rest, riders = self.merge_riders(dets)
        dets = Detections.concat([rest, riders])
        keep = np.array([c in self.coco for c in dets.classes], dtype=bool)
        dets = dets.take(keep)
        return Detections(dets.boxes, dets.scores, [self.coco[c] for c in dets.classes])


def drop_ego_hood(dets: Detections, width: int, height: int, min_width: float = 0.75, min_top: float = 0.7,
                  bottom: float = 0.97) -> Detections:
    """Without the boxes that reach the image's bottom `1 - bottom` and are wide (>= `min_width` of the image) or
    flat (top below `min_top` of the height): the camera car's own bonnet and dashboard.

    Both COCO teachers call the bonnet a car (0.6-0.7 on 3 of the BDD100K frames, and its reflections at night), or
    put a low-score "car" over the whole frame; as a label the first teaches the student to see a car in every
    frame, as an ignore region the second switches off the negatives of the whole image. A real road user that
    reaches the bottom edge is close, so its top is near the horizon, not in the bottom 30 %; one that wide is the
    side of a bus beside us, rare enough to lose."""
    reach = dets.boxes[:, 3] >= bottom * height
    wide = (dets.boxes[:, 2] - dets.boxes[:, 0]) >= min_width * width
    flat = dets.boxes[:, 1] >= min_top * height
    return dets.take(~(reach & (wide | flat)))


class RoadDetector:
    """One or more COCO teachers -> road-class Detections in source pixels.

    With several teachers their COCO boxes are pooled and de-duplicated per class before the mapping (their scores
    are comparable enough: clear cars score 0.8-0.95 with both); a final NMS per road class folds what the mapping
    makes one class (a "car" and a "truck" on the same van). `hood_width`: see drop_ego_hood (None keeps all)."""

    def __init__(self, teachers: Sequence[CocoDetector], mapping: ClassMapping | None = None,
                 nms_iou: float = NMS_IOU, hood_width: float | None = 0.75) -> None:
        if not teachers:
            raise ValueError("RoadDetector needs at least one teacher")
        self.teachers = list(teachers)
        self.mapping = mapping or ClassMapping()
        self.nms_iou = nms_iou
        self.hood_width = hood_width

    def __call__(self, rgb: np.ndarray) -> Detections:
        coco = Detections.concat(t(rgb) for t in self.teachers)
        if len(self.teachers) > 1:
            coco = class_nms(coco, self.nms_iou)
        dets = class_nms(self.mapping.apply(coco), self.nms_iou)
        if self.hood_width is not None:
            dets = drop_ego_hood(dets, rgb.shape[1], rgb.shape[0], self.hood_width)
        return dets

    def describe(self) -> dict[str, Any]:
        return {"teachers": [t.describe() for t in self.teachers], "class_map": dict(self.mapping.coco),
                "rider_cover": self.mapping.rider_cover, "nms_iou": self.nms_iou, "hood_width": self.hood_width}


def label_boxes(dets: Detections, threshold: float = DET_THRESHOLD, low_threshold: float = DET_LOW_THRESHOLD,
                overlap: float = NMS_IOU, digits: int = 1,
                per_class: Mapping[str, tuple[float, float]] | None = None) -> list[list[Any]]:
    """Detections -> manifest boxes [x1, y1, x2, y2, class, score], best first.

    score >= threshold: a box of its class. low_threshold <= score < threshold: an "ignore" region, so the student
    is neither rewarded nor punished where the teacher is unsure. An unsure box that overlaps a confident one by
    IoU >= `overlap` is a second guess at the same object (another class, a looser box), not a separate object:
    it is dropped, since a don't-care region on top of a positive would blur that positive. Below low_threshold:
    background. `per_class` {class: (threshold, low_threshold)} overrides both for some classes: a teacher is
    better at cars than at people (bench/teacher_thresholds.py measures by how much)."""
    bands = {None: (threshold, low_threshold), **(per_class or {})}
    for cls, (hi, lo) in bands.items():
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"need 0 <= low_threshold <= threshold <= 1, got {lo} and {hi}"
                             + (f" for {cls}" if cls else ""))
    order = np.argsort(-dets.scores, kind="stable")
    dets = dets.take(order)
    hi = np.array([bands.get(str(c), bands[None])[0] for c in dets.classes], np.float32)
    lo = np.array([bands.get(str(c), bands[None])[1] for c in dets.classes], np.float32)
    sure = dets.scores >= hi
    unsure = (dets.scores >= lo) & ~sure
    if sure.any() and unsure.any():
        unsure &= ~(box_iou(dets.boxes, dets.boxes[sure]).max(axis=1) >= overlap)
    return [[round(float(v), digits) for v in dets.boxes[i]]
            + [str(dets.classes[i]) if sure[i] else IGNORE_CLASS, round(float(dets.scores[i]), 3)]
            for i in np.flatnonzero(sure | unsure)]


# --- timing ------------------------------------------------------------------------------------------------------


def time_teachers(teachers: Mapping[str, Callable[[np.ndarray], Any]], images: Sequence[np.ndarray],
                  warmup: int = 1, repeats: int = 1) -> dict[str, float]:
    """Mean milliseconds per image of each teacher (preprocessing, inference and decoding) on this machine.

    The first `warmup` calls are not counted: ORT allocates its buffers and picks kernels on the first run."""
    if not images:
        raise ValueError("time_teachers needs at least one image")
    result = {}
    for name, teacher in teachers.items():
        for i in range(warmup):
            teacher(images[i % len(images)])
        t0 = time.perf_counter()
        for _ in range(repeats):
            for img in images:
                teacher(img)
        result[name] = 1000.0 * (time.perf_counter() - t0) / (repeats * len(images))
    return result
