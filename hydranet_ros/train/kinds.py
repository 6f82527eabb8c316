"""Each task kind's training: how a manifest label becomes a sample's target, its loss, its metric and how the metric
is summarised. One class per kind, registered in `TRAINING`; the dataset, the trainer, evaluation and the task-
affinity study look a head's kind up here instead of branching on it. A new kind is one class here, beside its
options (core.tasks), its head (model.heads), its post-processing (runtime.postprocess) and its publisher
(ros.publishers); test_layers checks that every registry covers every kind.

Targets travel typed: a sample's `Label` per task, a batch's `TaskBatch` per task (data.Item and data.Batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from hydranet_ros.core.geometry import metric_scale, metric_to_canonical
from hydranet_ros.core.tasks import DepthOptions, DetectionOptions
from hydranet_ros.model.spec import HeadSpec
from hydranet_ros.train.augment import Geometry, transform_boxes
from hydranet_ros.train.losses import (
    DEPTH_KINDS,
    SEGMENTATION_KINDS,
    centernet_targets,
    depth_loss,
    detection_loss,
    segmentation_loss,
)
from hydranet_ros.train.manifest import IGNORE_INDEX, ManifestError, Sample, read_boxes, read_depth, read_segmentation
from hydranet_ros.train.metrics import DepthMetric, DetectionMetric, SegmentationMetric, num, pct, table

DETECTION_MIN_SCORE = 0.05  # AP needs the low-score tail; the node's own threshold is a deployment choice


@dataclass
class Label:
    """One sample's label of one task, in the sample's output frame: a dense map (class ids uint8, or canonical
    depth float32 with 0 = unknown) or boxes [N, 5] (x1 y1 x2 y2 class id) with don't-care regions [M, 4]."""

    dense: Tensor | None = None
    boxes: Tensor | None = None
    ignore: Tensor | None = None


@dataclass
class TaskBatch:
    """One task's labels of a batch. present: bool [B], which images carry a label (the others' targets are
    fillers that no loss or metric reads): dense [B, H, W], or per image boxes and don't-care regions."""

    present: Tensor
    dense: Tensor | None = None
    boxes: list[Tensor] = field(default_factory=list)
    ignore: list[Tensor] = field(default_factory=list)

    def label(self, i: int) -> Label:
        return Label(dense=None if self.dense is None else self.dense[i],
                     boxes=self.boxes[i] if self.boxes else None, ignore=self.ignore[i] if self.ignore else None)

    @classmethod
    def collate(cls, labels: Sequence[Label | None], hw: tuple[int, int]) -> TaskBatch:
        present = torch.tensor([lb is not None for lb in labels], dtype=torch.bool)
        given = [lb for lb in labels if lb is not None]
        tb = cls(present)
        dense = [lb.dense for lb in given if lb.dense is not None]
        if dense:
            fill = IGNORE_INDEX if dense[0].dtype == torch.uint8 else 0
            blank = torch.full(hw, fill, dtype=dense[0].dtype)
            tb.dense = torch.stack([lb.dense if lb is not None and lb.dense is not None else blank for lb in labels])
        if any(lb.boxes is not None for lb in given):
            tb.boxes = [lb.boxes if lb is not None and lb.boxes is not None else torch.zeros(0, 5) for lb in labels]
            tb.ignore = [lb.ignore if lb is not None and lb.ignore is not None else torch.zeros(0, 4)
                         for lb in labels]
        return tb


class TrainingKind:
    """The training side of one task kind (subclasses fill in every method)."""

    kind = ""
    label_format = "file"  # the manifest label's key: "file" (an image) or "boxes"
    needs_intrinsics = False  # its labels mean nothing without the camera's focal length
    loss_options: frozenset[str] = frozenset()
    loss_kinds: tuple[str, ...] = ()  # the values of its `kind` loss option, the first being the default
    primary = ("", True)  # the one metric per task (flat name) and whether higher is better

    def load(self, head: HeadSpec, label: dict[str, Any], sample: Sample, geo: Geometry,
             src_size: tuple[int, int]) -> Label:
        raise NotImplementedError

    def check_loss_options(self, head: HeadSpec, opts: dict[str, Any]) -> dict[str, Any]:
        """The recipe's loss options for `head`, checked (ValueError says what is wrong) and normalised."""
        bad = sorted(set(opts) - self.loss_options)
        if bad:
            raise ValueError(f"unknown option(s) {bad} for {head.name!r}, a {self.kind} head "
                             f"(valid: {sorted(self.loss_options)})")
        if self.loss_kinds and opts.get("kind", self.loss_kinds[0]) not in self.loss_kinds:
            raise ValueError(f"kind: one of {', '.join(self.loss_kinds)}, got {opts['kind']!r}")
        return dict(opts)

    def loss(self, head: HeadSpec, raw: Tensor, tb: TaskBatch, opts: dict[str, Any], hw: tuple[int, int],
             device: torch.device) -> Tensor:
        raise NotImplementedError

    def metric(self, head: HeadSpec) -> Any:
        raise NotImplementedError

    def update(self, metric: Any, head: HeadSpec, pred: np.ndarray, label: Label, fx: float | None) -> None:
        """One image's prediction (the fused model's output) against its label; fx: the camera's focal length in
        the network image, where the sample has intrinsics."""
        raise NotImplementedError

    def done(self, metric: Any) -> bool:
        """Whether the metric saw anything to report."""
        raise NotImplementedError

    def flat(self, result: dict[str, Any]) -> dict[str, float]:
        """The headline numbers of one task's result (metric name -> value), for logs and plots."""
        raise NotImplementedError

    def table(self, results: dict[str, dict[str, Any]]) -> str:
        """Markdown for every task of this kind: {task: result}."""
        raise NotImplementedError


def _at_size(x: np.ndarray, shape: tuple[int, ...], nearest: bool) -> np.ndarray:
    """A prediction at the target's size (heads with an output stride give smaller maps)."""
    import cv2

    h, w = shape[-2:]
    if x.shape == (h, w):
        return x
    if nearest:  # class ids
        return cv2.resize(x.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(x.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _check_size(label_img: np.ndarray, src_size: tuple[int, int], label: dict[str, Any]) -> None:
    if (label_img.shape[1], label_img.shape[0]) != src_size:
        raise ManifestError(f"{label['file']} is {label_img.shape[1]}x{label_img.shape[0]}, its image is "
                            f"{src_size[0]}x{src_size[1]}: labels must be at the image's resolution")


class SegmentationTraining(TrainingKind):
    kind = "segmentation"
    loss_options = frozenset({"kind", "gamma"})
    loss_kinds = SEGMENTATION_KINDS
    primary = ("miou", True)

    @override
    def load(self, head, label, sample, geo, src_size):
        ids = read_segmentation(label)
        _check_size(ids, src_size, label)
        if int(ids[ids != IGNORE_INDEX].max(initial=0)) >= len(head.classes):
            raise ManifestError(f"{label['file']}: class id >= {len(head.classes)} for task {head.name!r} "
                                f"({list(head.classes)}); add a 'map' to the label")
        return Label(dense=torch.from_numpy(geo.warp(ids, nearest=True, fill=IGNORE_INDEX)))

    @override
    def loss(self, head, raw, tb, opts, hw, device):
        present = tb.present.to(device)
        target = tb.dense.to(device).long() if tb.dense is not None else torch.full(
            (len(present), *hw), IGNORE_INDEX, dtype=torch.long, device=device)
        return segmentation_loss(raw, target, present, **opts)

    @override
    def metric(self, head):
        return SegmentationMetric(list(head.classes))

    @override
    def update(self, metric, head, pred, label, fx):
        metric.update(_at_size(pred, label.dense.shape, nearest=True), label.dense.numpy())

    @override
    def done(self, metric):
        return bool(metric.confusion.sum())

    @override
    def flat(self, result):
        return {"miou": float(result["miou"])}

    @override
    def table(self, results):
        rows = []
        for task, r in results.items():
            rows += [[task, c, pct(v)] for c, v in r["iou"].items()]
            rows.append([task, "**mIoU**", pct(r["miou"])])
            rows.append([task, "**pixel accuracy**", pct(r["pixel_accuracy"])])
        return "### Segmentation\n\n" + table(["task", "class", "IoU (%)"], rows)


class DepthTraining(TrainingKind):
    kind = "depth"
    needs_intrinsics = True
    loss_options = frozenset({"kind"})
    loss_kinds = DEPTH_KINDS
    primary = ("abs_rel", False)

    @override
    def load(self, head, label, sample, geo, src_size):
        opts = DepthOptions.resolve(head.options)
        depth = read_depth(label)
        _check_size(depth, src_size, label)
        if label.get("zero") == "far":
            # e.g. the simulator's sky: no surface in range, so the target is the head's cap, not "unknown".
            depth[depth == 0] = opts.max_depth * 2
        depth = geo.warp(depth, nearest=True, fill=0.0)
        fx = geo.intrinsics(sample.intrinsics)[0]
        return Label(dense=torch.from_numpy(metric_to_canonical(depth, fx, opts.canonical_fx, opts.max_depth)))

    @override
    def loss(self, head, raw, tb, opts, hw, device):
        present = tb.present.to(device)
        target = tb.dense.to(device) if tb.dense is not None else torch.zeros(len(present), *hw, device=device)
        return depth_loss(raw, target, present, **opts)

    @override
    def metric(self, head):
        # The range test is done in `update`, per camera: the metric's own bounds stay out of the way.
        return DepthMetric(min_depth=DepthOptions.resolve(head.options).min_depth, max_depth=1e4)

    @override
    def update(self, metric, head, pred, label, fx):
        """Compared in the camera's metres, and only where the label is inside the head's range: beyond it the
        head predicts "at or beyond the cap" by design, which is not an error."""
        opts = DepthOptions.resolve(head.options)
        cap, to_metres = opts.max_depth, metric_scale(fx, opts.canonical_fx)
        target = label.dense.numpy()
        pred = _at_size(pred, target.shape, nearest=False)
        valid = (target > 0) & (target < cap * 0.999)  # the dataset clamps out-of-range labels to the cap
        metric.update(np.where(valid, pred * to_metres, 0.0), np.where(valid, target * to_metres, 0.0))

    @override
    def done(self, metric):
        return bool(metric.pixels)

    @override
    def flat(self, result):
        return {"abs_rel": float(result["abs_rel"]), "delta1": float(result["delta1"])}

    @override
    def table(self, results):
        header = ["task", "AbsRel", "SqRel", "RMSE", "RMSE log", "δ<1.25 (%)", "δ<1.25² (%)", "δ<1.25³ (%)", "pixels"]
        rows = [[task, *(num(r[k]) for k in ("abs_rel", "sq_rel", "rmse", "rmse_log"))]
                + [*(pct(r[f"delta{k}"]) for k in (1, 2, 3)), str(r["pixels"])] for task, r in results.items()]
        return "### Depth\n\n" + table(header, rows)


def update_detection(metric: DetectionMetric, rows: np.ndarray, boxes: np.ndarray, ignore: np.ndarray,
                     min_score: float = DETECTION_MIN_SCORE) -> None:
    """One image's decoded rows [K, 6] against its boxes [N, 5] and don't-care regions [M, 4] (network pixels)."""
    rows = rows[rows[:, 4] >= min_score]
    n_cls = len(metric.classes)
    # A don't-care region has no class: it may absorb a detection of any class.
    gt_boxes = np.concatenate([boxes[:, :4], np.repeat(ignore, n_cls, axis=0)])
    gt_classes = np.concatenate([boxes[:, 4].astype(np.int64), np.tile(np.arange(n_cls), len(ignore))])
    gt_ignore = np.concatenate([np.zeros(len(boxes), bool), np.ones(len(ignore) * n_cls, bool)])
    metric.update(rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64), gt_boxes, gt_classes, gt_ignore)


class DetectionTraining(TrainingKind):
    kind = "detection"
    label_format = "boxes"
    loss_options = frozenset({"wh_weight", "offset_weight", "class_weights"})
    primary = ("map50", True)

    @override
    def load(self, head, label, sample, geo, src_size):
        boxes, ignore = transform_boxes(*read_boxes(label, head.classes), geo)
        return Label(boxes=torch.from_numpy(boxes), ignore=torch.from_numpy(ignore))

    @override
    def check_loss_options(self, head, opts):
        opts = super().check_loss_options(head, opts)
        if "class_weights" in opts:
            cw = opts["class_weights"]
            bad_cls = sorted(set(cw) - set(head.classes)) if isinstance(cw, dict) else None
            if bad_cls is None or bad_cls or not all(isinstance(v, (int, float)) and v > 0 for v in cw.values()):
                raise ValueError(f"class_weights: {{class: weight > 0}} for classes {list(head.classes)}, got {cw!r}")
            opts["class_weights"] = [float(cw.get(c, 1.0)) for c in head.classes]  # in the head's class order
        return opts

    @override
    def loss(self, head, raw, tb, opts, hw, device):
        present = tb.present.to(device)
        stride = DetectionOptions.resolve(head.options).stride
        boxes = tb.boxes or [torch.zeros(0, 5)] * len(present)
        ignore = tb.ignore or [torch.zeros(0, 4)] * len(present)
        targets = centernet_targets(boxes, len(head.classes), tuple(raw.shape[-2:]), stride, device=device,
                                    ignore=ignore)
        return detection_loss(raw, targets, present, **opts)

    @override
    def metric(self, head):
        return DetectionMetric(list(head.classes))

    @override
    def update(self, metric, head, pred, label, fx):
        update_detection(metric, pred, label.boxes.numpy(), label.ignore.numpy())

    @override
    def done(self, metric):
        return bool(metric.num_gt.sum() or any(metric._scores))

    @override
    def flat(self, result):
        flat = {}
        if result["map"] is not None:
            flat["map50"] = float(result["map"])
        recalls = [c["recall"] for c in result["classes"].values() if c["recall"] is not None]
        if recalls:
            flat["recall"] = float(np.mean(recalls))
        return flat

    @override
    def table(self, results):
        rows = []
        for task, r in results.items():
            rows += [[task, c, pct(v["ap"]), pct(v["recall"]), str(v["num_gt"])] for c, v in r["classes"].items()]
            rows.append([task, f"**mAP@{r.get('iou_threshold', 0.5):g}**", pct(r["map"]), "", ""])
        return "### Detection\n\n" + table(["task", "class", "AP (%)", "recall (%)", "GT"], rows)


TRAINING: dict[str, TrainingKind] = {k.kind: k for k in (SegmentationTraining(), DepthTraining(),
                                                          DetectionTraining())}


def training_of(kind: str) -> TrainingKind:
    """The training side of a head kind; unknown -> ValueError listing the known ones."""
    if kind not in TRAINING:
        raise ValueError(f"no training for head kind {kind!r}; kinds: {', '.join(TRAINING)}")
    return TRAINING[kind]


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The headline numbers per task ("task/metric"), from {kind: {task: result}}: for CSV logs and plots."""
    return {f"{task}/{name}": v for kind, per_task in results.items() if kind in TRAINING
            for task, r in per_task.items() for name, v in TRAINING[kind].flat(r).items()}


def markdown_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """{kind: {task: result}} as Markdown, one table per kind present (in the registry's order).

    Ratios (IoU, pixel accuracy, AP, recall, δ) are shown in percent with one decimal, errors with three decimals,
    undefined values as "–"."""
    out = [TRAINING[k].table(results[k]) for k in TRAINING if results.get(k)]
    return "\n\n".join(out) + "\n" if out else ""

