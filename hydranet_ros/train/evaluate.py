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

from hydranet_ros.core.progress import show_progress
from hydranet_ros.model.spec import ModelSpec
from hydranet_ros.train.data import MultiTaskDataset, collate
from hydranet_ros.train.kinds import TRAINING

Predict = Callable[[np.ndarray], dict[str, np.ndarray]]  # uint8 RGB [B, H, W, 3] -> {output name: array}


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
    """{kind: {task: metric result}} over the dataset's labelled images (each head's kind measures it)."""
    spec: ModelSpec = dataset.spec
    metrics = {h.name: TRAINING[h.type].metric(h) for h in spec.heads}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
    for n, batch in enumerate(show_progress(loader, desc="evaluate", unit="batch", enabled=progress, leave=False)):
        if max_batches is not None and n >= max_batches:
            break
        out = predict(batch.image.numpy())
        for i, index in enumerate(batch.index.tolist()):
            k = dataset.samples[index].intrinsics
            fx = batch.geometry[i].intrinsics(k)[0] if k is not None else None
            for h in spec.heads:
                tb = batch.tasks[h.name]
                if tb.present[i]:
                    TRAINING[h.type].update(metrics[h.name], h, out[h.name][i], tb.label(i), fx)
    results: dict[str, dict[str, Any]] = {}
    for kind, impl in TRAINING.items():
        done = {h.name: metrics[h.name].result() for h in spec.heads
                if h.type == kind and impl.done(metrics[h.name])}
        if done:
            results[kind] = done
    return results
