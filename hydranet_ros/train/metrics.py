"""Evaluation metrics for the multi-task model, accumulated image by image over a dataset.

Each accumulator takes one image per `update(...)` and keeps only sufficient statistics (a confusion matrix, sums,
scored TP/FP flags), so `hydranet eval` can stream a dataset of any size; `result()` turns them into a plain dict
that `kinds.markdown_table` renders. numpy only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# The x1y1x2y2 boxes are continuous (pixel-edge) coordinates: area = (x2 - x1) * (y2 - y1), no "+1" as in the
# original VOC devkit's integer pixel indices.


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes `a` [N,4] and `b` [M,4] in x1y1x2y2 -> [N,M]; 0 where the union is empty."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


class SegmentationMetric:
    """Per-class IoU, mIoU and pixel accuracy from a dataset-wide confusion matrix.

    IoU is computed from counts summed over the whole dataset (not averaged per image). A class that appears in
    neither prediction nor target anywhere has an undefined IoU (0/0): it is reported as None and left out of the
    mean, so a dataset that lacks a class does not drag mIoU down (nor up). Target pixels equal to `ignore_index`
    are excluded entirely, whatever the prediction there.
    """

    def __init__(self, classes: list[str], ignore_index: int = 255) -> None:
        self.classes = list(classes)
        self.ignore_index = ignore_index
        n = len(self.classes)
        self.confusion = np.zeros((n, n), dtype=np.int64)  # rows: target class, columns: predicted class

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {pred.shape} != target shape {target.shape}")
        keep = target != self.ignore_index
        t = target[keep].astype(np.int64)
        p = pred[keep].astype(np.int64)
        n = len(self.classes)
        # Out-of-range ids would silently land in another cell of the flattened bincount: refuse them.
        for name, v in (("target", t), ("prediction", p)):
            if v.size and (v.min() < 0 or v.max() >= n):
                raise ValueError(f"{name} class id outside [0, {n}) (ignore_index={self.ignore_index})")
        self.confusion += np.bincount(t * n + p, minlength=n * n).reshape(n, n)

    def result(self) -> dict[str, Any]:
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        iou = {c: (float(tp[i] / union[i]) if union[i] > 0 else None) for i, c in enumerate(self.classes)}
        defined = [v for v in iou.values() if v is not None]
        total = self.confusion.sum()
        # With no evaluated pixel at all, the means are undefined: NaN rather than a misleading 0.
        return {
            "iou": iou,
            "miou": float(np.mean(defined)) if defined else math.nan,
            "pixel_accuracy": float(tp.sum() / total) if total else math.nan,
        }


class DepthMetric:
    """The standard (Eigen / KITTI) depth error and accuracy measures, pixel-weighted over the dataset.

    A target pixel is valid when finite and within (min_depth, max_depth]; 0 marks "no ground truth" (LiDAR gaps).
    Predictions are clipped to [min_depth, max_depth] as in the KITTI evaluation; a non-finite prediction (+inf
    "beyond range", NaN) counts as max_depth, -inf as min_depth.

    Every measure is averaged over ALL valid pixels of the dataset (sums accumulated, divided once in `result`), not
    computed per image and then averaged: images with dense ground truth weigh more, and an image with a handful of
    valid pixels cannot swing the result. The Eigen split scripts average per image, so numbers can differ
    slightly from published ones.
    """

    _SUMS = ("abs_rel", "sq_rel", "sq_err", "sq_log_err", "delta1", "delta2", "delta3")

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0) -> None:
        if not 0 < min_depth < max_depth:
            raise ValueError("need 0 < min_depth < max_depth")
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.sums = dict.fromkeys(self._SUMS, 0.0)
        self.pixels = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = np.asarray(pred, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {pred.shape} != target shape {target.shape}")
        valid = np.isfinite(target) & (target > self.min_depth) & (target <= self.max_depth)
        t = target[valid]
        p = np.nan_to_num(pred[valid], nan=self.max_depth, posinf=self.max_depth, neginf=self.min_depth)
        p = np.clip(p, self.min_depth, self.max_depth)
        err = p - t
        ratio = np.maximum(p / t, t / p)
        self.sums["abs_rel"] += float(np.sum(np.abs(err) / t))
        self.sums["sq_rel"] += float(np.sum(err**2 / t))
        self.sums["sq_err"] += float(np.sum(err**2))
        self.sums["sq_log_err"] += float(np.sum((np.log(p) - np.log(t)) ** 2))
        for k in (1, 2, 3):
            self.sums[f"delta{k}"] += float(np.count_nonzero(ratio < 1.25**k))
        self.pixels += int(t.size)

    def result(self) -> dict[str, Any]:
        n = self.pixels
        mean = {k: (v / n if n else math.nan) for k, v in self.sums.items()}
        return {
            "abs_rel": mean["abs_rel"],
            "sq_rel": mean["sq_rel"],
            "rmse": math.sqrt(mean["sq_err"]),
            "rmse_log": math.sqrt(mean["sq_log_err"]),
            "delta1": mean["delta1"],
            "delta2": mean["delta2"],
            "delta3": mean["delta3"],
            "pixels": n,
        }


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP (VOC2010+): area under the monotone precision envelope of the PR curve."""
    order = np.argsort(-scores, kind="stable")  # stable: equal scores keep arrival order, reproducibly
    tp = tp[order].astype(np.float64)
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1.0 - tp)
    recall = np.concatenate([[0.0], ctp / num_gt, [1.0]])
    precision = np.concatenate([[0.0], ctp / np.maximum(ctp + cfp, 1e-12), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # envelope: best precision at this recall or beyond
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


class DetectionMetric:
    """Per-class AP at one IoU threshold (VOC style), recall and TP/FP counts over a dataset.

    Matching follows the PASCAL VOC devkit, per image and class: detections in descending score take the GT box of
    highest IoU (already matched or not); at IoU >= threshold it is a TP if that GT is still free, a FP if it was
    taken (duplicate), and neither if the GT is ignored ("difficult", crowd). Below the threshold it is a FP. Note
    the VOC rule does not fall back to a second, free GT when the best one is taken. Ignored GTs don't count in the
    recall denominator.
    """

    def __init__(self, classes: list[str], iou_threshold: float = 0.5) -> None:
        self.classes = list(classes)
        self.iou_threshold = iou_threshold
        n = len(self.classes)
        self._scores: list[list[np.ndarray]] = [[] for _ in range(n)]
        self._tp: list[list[np.ndarray]] = [[] for _ in range(n)]
        self.num_gt = np.zeros(n, dtype=np.int64)

    def _check_ids(self, ids: np.ndarray, what: str) -> None:
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.classes)):
            raise ValueError(f"{what} class id outside [0, {len(self.classes)})")

    def update(
        self,
        pred_boxes: np.ndarray,
        pred_scores: np.ndarray,
        pred_classes: np.ndarray,
        gt_boxes: np.ndarray,
        gt_classes: np.ndarray,
        gt_ignore: np.ndarray | None = None,
    ) -> None:
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        pred_classes = np.asarray(pred_classes, dtype=np.int64).reshape(-1)
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        gt_classes = np.asarray(gt_classes, dtype=np.int64).reshape(-1)
        gt_ignore = (
            np.zeros(len(gt_boxes), dtype=bool) if gt_ignore is None else np.asarray(gt_ignore, bool).reshape(-1)
        )
        if not len(pred_boxes) == len(pred_scores) == len(pred_classes):
            raise ValueError("pred_boxes, pred_scores and pred_classes differ in length")
        if not len(gt_boxes) == len(gt_classes) == len(gt_ignore):
            raise ValueError("gt_boxes, gt_classes and gt_ignore differ in length")
        self._check_ids(pred_classes, "prediction")
        self._check_ids(gt_classes, "ground-truth")

        for c in np.union1d(pred_classes, gt_classes):
            g = gt_classes == c
            boxes, ignore = gt_boxes[g], gt_ignore[g]
            self.num_gt[c] += int(np.count_nonzero(~ignore))
            d = np.nonzero(pred_classes == c)[0]
            if not d.size:
                continue
            d = d[np.argsort(-pred_scores[d], kind="stable")]
            iou = box_iou(pred_boxes[d], boxes)
            taken = np.zeros(len(boxes), dtype=bool)
            keep = np.ones(len(d), dtype=bool)  # False: matched an ignored GT, dropped from the PR curve
            tp = np.zeros(len(d), dtype=bool)
            for i in range(len(d)):
                if not len(boxes):
                    break  # no GT of this class here: every detection is a FP
                j = int(np.argmax(iou[i]))
                if iou[i, j] < self.iou_threshold:
                    continue
                if ignore[j]:
                    keep[i] = False
                elif not taken[j]:
                    tp[i] = taken[j] = True
            self._scores[c].append(pred_scores[d][keep])
            self._tp[c].append(tp[keep])

    def result(self) -> dict[str, Any]:
        per_class: dict[str, dict[str, Any]] = {}
        for c, name in enumerate(self.classes):
            scores = np.concatenate(self._scores[c]) if self._scores[c] else np.zeros(0)
            tp = np.concatenate(self._tp[c]) if self._tp[c] else np.zeros(0, dtype=bool)
            n_gt = int(self.num_gt[c])
            n_tp = int(np.count_nonzero(tp))
            per_class[name] = {
                # AP and recall are undefined without a GT: None, and the class stays out of the mAP.
                "ap": average_precision(scores, tp, n_gt) if n_gt else None,
                "recall": n_tp / n_gt if n_gt else None,
                "num_gt": n_gt,
                "tp": n_tp,
                "fp": int(tp.size - n_tp),
            }
        aps = [v["ap"] for v in per_class.values() if v["ap"] is not None]
        return {"classes": per_class, "map": float(np.mean(aps)) if aps else None, "iou_threshold": self.iou_threshold}


def num(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
