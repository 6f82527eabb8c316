"""Evaluate any predictor with the fused model's outputs (torch `FusedHydraNet`, or an ONNX Runtime engine) on a
`MultiTaskDataset` without augmentation: mIoU per segmentation task, depth errors in metres, detection AP / recall.

Everything is compared in the network's letterboxed frame, the same pixels the deployed model sees. IoU of boxes
and of masks do not change under the letterbox's uniform scale. Depth is compared in the camera's real metres
(canonical depth * fx / canonical_fx, per image), and only where the label is inside the head's range: beyond it the
head predicts "at or beyond the cap" by design, which is not an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from hydranet_ros.core.geometry import metric_scale
from hydranet_ros.core.tasks import DepthOptions
from hydranet_ros.model.spec import ModelSpec
from hydranet_ros.train.data import MultiTaskDataset, collate
from hydranet_ros.train.metrics import DepthMetric, DetectionMetric, SegmentationMetric

Predict = Callable[[np.ndarray], dict[str, np.ndarray]]  # uint8 RGB [B, H, W, 3] -> {output name: array}
DETECTION_MIN_SCORE = 0.05  # AP needs the low-score tail; the node's own threshold is a deployment choice


def torch_predictor(fused: torch.nn.Module, device: torch.device | str = "cpu") -> Predict:
    """A predictor over a `FusedHydraNet` (eval mode, no gradient)."""

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        fused.eval()
        with torch.no_grad():
            out = fused.named(torch.from_numpy(images).to(device))
        return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in out.items()}

    return predict


def evaluate(predict: Predict, dataset: MultiTaskDataset, batch_size: int = 4, workers: int = 0,
             progress: bool = True, max_batches: int | None = None) -> dict[str, dict[str, Any]]:
    """{"segmentation"|"depth"|"detection": {task: metric result}} over the dataset's labelled images."""
    spec: ModelSpec = dataset.spec
    seg = {h.name: SegmentationMetric(list(h.classes)) for h in spec.heads if h.type == "segmentation"}
    det = {h.name: DetectionMetric(list(h.classes)) for h in spec.heads if h.type == "detection"}
    dep = {h.name: DepthMetric(min_depth=DepthOptions.resolve(h.options).min_depth,
                               max_depth=1e4)  # the range test is done here, per camera
           for h in spec.heads if h.type == "depth"}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
    for n, batch in enumerate(tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False)):
        if max_batches is not None and n >= max_batches:
            break
        out = predict(batch["image"].numpy())
        for i, index in enumerate(batch["index"].tolist()):
            for task, metric in seg.items():
                if batch["present"][task][i]:
                    metric.update(_at_size(out[task][i], batch["targets"][task][i].shape, nearest=True),
                                  batch["targets"][task][i].numpy())
            for task, metric in det.items():
                if batch["present"][task][i]:
                    update_detection(metric, out[task][i], batch["boxes"][task][i].numpy(),
                                      batch["ignore"][task][i].numpy())
            for task, metric in dep.items():
                if batch["present"][task][i]:
                    fx = batch["geometry"][i].intrinsics(dataset.samples[index].intrinsics)[0]
                    _update_depth(metric, spec.head(task), fx, out[task][i], batch["targets"][task][i].numpy())
    results: dict[str, dict[str, Any]] = {}
    if seg:
        results["segmentation"] = {t: m.result() for t, m in seg.items() if m.confusion.sum()}
    if dep:
        results["depth"] = {t: m.result() for t, m in dep.items() if m.pixels}
    if det:
        results["detection"] = {t: m.result() for t, m in det.items() if m.num_gt.sum() or any(m._scores)}
    return {k: v for k, v in results.items() if v}


def _at_size(x: np.ndarray, shape: tuple[int, ...], nearest: bool) -> np.ndarray:
    """A prediction at the target's size (heads with an output stride give smaller maps)."""
    import cv2

    h, w = shape[-2:]
    if x.shape == (h, w):
        return x
    if nearest:  # class ids
        return cv2.resize(x.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(x.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


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


def _update_depth(metric: DepthMetric, head: Any, fx: float, pred: np.ndarray, target: np.ndarray) -> None:
    """fx: the camera's focal length in the network image (from the sample's geometry)."""
    opts = DepthOptions.resolve(head.options)
    cap, to_metres = opts.max_depth, metric_scale(fx, opts.canonical_fx)
    pred = _at_size(pred, target.shape, nearest=False)
    valid = (target > 0) & (target < cap * 0.999)  # the dataset clamps out-of-range labels to the cap
    metric.update(np.where(valid, pred * to_metres, 0.0), np.where(valid, target * to_metres, 0.0))


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The headline number per task, for CSV logs and plots: mIoU, AbsRel and δ<1.25, mAP@0.5 and recall."""
    flat: dict[str, float] = {}
    for task, r in results.get("segmentation", {}).items():
        flat[f"{task}/miou"] = float(r["miou"])
    for task, r in results.get("depth", {}).items():
        flat[f"{task}/abs_rel"] = float(r["abs_rel"])
        flat[f"{task}/delta1"] = float(r["delta1"])
    for task, r in results.get("detection", {}).items():
        if r["map"] is not None:
            flat[f"{task}/map50"] = float(r["map"])
        recalls = [c["recall"] for c in r["classes"].values() if c["recall"] is not None]
        if recalls:
            flat[f"{task}/recall"] = float(np.mean(recalls))
    return flat

