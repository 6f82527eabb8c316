"""Per-task losses on the heads' raw outputs (see `hydranet_ros.model.heads` for what each raw tensor means).

Annotations are asymmetric: an image may carry labels for only some tasks. Every loss therefore takes
`present` (BoolTensor [B], which images carry this task's label) and selects those images *before* computing
anything, so unlabelled images contribute neither loss nor gradient (not even NaN * 0). With no labelled image in
the batch a loss returns `raw.sum() * 0.0`: a zero still attached to the graph, so the trainer can always sum and
backpropagate the total.

Each head kind's loss is called through its training kind (kinds.py); detection also needs `centernet_targets` to
turn boxes into dense targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

SEGMENTATION_KINDS = ("ce", "focal")
DEPTH_KINDS = ("log_l1", "berhu", "silog")
SILOG_LAMBDA = 0.85  # as BTS / AdaBins; Eigen et al. 2014 used 0.5 (lambda=1 would make it fully scale invariant)
SILOG_SCALE = 10.0  # the common sqrt form, 10 * sqrt(...), brings the loss to the range of the other tasks


def _zero(raw: Tensor) -> Tensor:
    """A zero that keeps `raw`'s graph (and a zero gradient), for batches without this task's labels."""
    return raw.sum() * 0.0


def _check_kind(kind: str, valid: Sequence[str], what: str) -> None:
    if kind not in valid:
        raise ValueError(f"unknown {what} loss kind {kind!r}; valid kinds: {', '.join(valid)}")


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize as the export does; skipped when the size already matches (keeps pixels independent)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# --- segmentation ---------------------------------------------------------------------------------------------------


def segmentation_loss(
    logits: Tensor,
    target: Tensor,
    present: Tensor,
    kind: str = "ce",
    gamma: float = 2.0,
    ignore_index: int = 255,
) -> Tensor:
    """Cross entropy or focal loss (Lin et al. 2017, without alpha) over the valid pixels of labelled images.

    logits: [B, N, h, w] raw head output (stride 4), upsampled bilinearly to the target size first, as the export
    does, so training sees the same boundaries as inference. target: [B, H, W] long class ids; `ignore_index` pixels
    do not count. Mean over all valid pixels of the present images (pixels, not images, weigh equally).
    """
    _check_kind(kind, SEGMENTATION_KINDS, "segmentation")
    if not bool(present.any()):
        return _zero(logits)
    logits = _resize(logits[present], tuple(target.shape[-2:]))
    target = target[present].long()
    ce = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")  # 0 at ignored pixels
    if kind == "focal":
        p_t = torch.exp(-ce)  # probability of the true class; 1 at ignored pixels, so their term stays 0
        ce = (1.0 - p_t).pow(gamma) * ce
    valid = (target != ignore_index).sum().clamp(min=1)
    return ce.sum() / valid


# --- depth ----------------------------------------------------------------------------------------------------------


def depth_loss(pred: Tensor, target: Tensor, present: Tensor, kind: str = "log_l1") -> Tensor:
    """Depth loss on metres; target 0 marks invalid pixels (sparse LiDAR). pred [B, 1, h, w], target [B, H, W].

    pred is upsampled bilinearly to the target size (as the export does). Kinds:
      log_l1: mean |log pred - log target| over each image's valid pixels, averaged over images: a relative error,
              so far and near pixels weigh alike, and so do sparse (LiDAR) and dense (rendered) images.
      berhu:  reverse Huber (Laina et al. 2016) on metre residuals r: r if r <= c else (r^2 + c^2) / (2c),
              c = 0.2 * max residual of the batch (detached, as a threshold it is not optimised).
      silog:  scale-invariant log loss (Eigen et al. 2014) per image, in the common sqrt form
              10 * sqrt(mean(d^2) - 0.85 * mean(d)^2), d = log pred - log target; averaged over images with any
              valid pixel. The sqrt gets a 1e-8 floor inside, so a perfect prediction gives ~1e-3, not exactly 0.
    """
    _check_kind(kind, DEPTH_KINDS, "depth")
    if not bool(present.any()):
        return _zero(pred)
    target = target[present].float()
    pred = _resize(pred[present].float(), tuple(target.shape[-2:]))[:, 0]
    valid = target > 0
    if not bool(valid.any()):
        return _zero(pred)
    if kind == "berhu":
        r = (pred[valid] - target[valid]).abs()
        c = (0.2 * r.max()).detach().clamp(min=1e-6)  # floor: torch.where differentiates both branches (0/0 = NaN)
        return torch.where(r <= c, r, (r * r + c * c) / (2 * c)).mean()
    # Logs only where valid: log(0) at invalid pixels would poison the gradient even behind a mask.
    d = torch.where(valid, torch.log(pred) - torch.log(target.clamp(min=1e-6)), torch.zeros_like(pred))
    if kind == "log_l1":
        # Mean per image, then over images: a sparse LiDAR frame (5 % of its pixels valid) weighs as much as a
        # dense synthetic one, instead of being drowned by its pixel count.
        n = valid.flatten(1).sum(1)
        images = n > 0
        return (d.abs().flatten(1).sum(1)[images] / n[images]).mean()
    n = valid.flatten(1).sum(1)
    images = n > 0
    n = n[images].float()
    d = d.flatten(1)[images]
    mean_sq = (d * d).sum(1) / n
    mean = d.sum(1) / n
    # mean(d^2) >= mean(d)^2, so the radicand is >= 0 for lambda < 1.
    return (SILOG_SCALE * torch.sqrt((mean_sq - SILOG_LAMBDA * mean * mean).clamp(min=1e-8))).mean()


# --- detection ------------------------------------------------------------------------------------------------------


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet / CenterNet's radius (in map cells) for a box of `height` x `width` cells.

    The smallest of three corner-shift cases that keep IoU >= min_overlap; kept verbatim from CenterNet's code
    (including its `/ 2` where the quadratic formula has `/ 2a`), so heatmaps match the published training.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _splat(heat: Tensor, cx: int, cy: int, radius: int) -> None:
    """Max a Gaussian (peak exactly 1 at (cx, cy), sigma = diameter / 6, cut at `radius`) into heat [h, w]."""
    sigma = (2 * radius + 1) / 6
    h, w = heat.shape
    x0, x1 = max(0, cx - radius), min(w, cx + radius + 1)
    y0, y1 = max(0, cy - radius), min(h, cy + radius + 1)
    xs = torch.arange(x0, x1, dtype=heat.dtype, device=heat.device) - cx
    ys = torch.arange(y0, y1, dtype=heat.dtype, device=heat.device) - cy
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma * sigma))  # exp(0) = 1 exactly at the centre
    heat[y0:y1, x0:x1] = torch.maximum(heat[y0:y1, x0:x1], g)


def centernet_targets(
    boxes: Sequence[Tensor],
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int,
    device: torch.device | str | None = None,
    ignore: Sequence[Tensor] | None = None,
) -> dict[str, Tensor]:
    """Dense CenterNet targets for a batch; the exact inverse of `DetectionHead.decode`.

    boxes: per image a [N_i, 5] tensor (x1, y1, x2, y2, class) in input pixels. Returns
      heat   [B, C, h, w] Gaussian splats (max over overlaps), exactly 1 at each object's centre cell
      log_wh [B, 2, h, w] log(w / stride), log(h / stride)       (only meaningful where mask)
      offset [B, 2, h, w] centre / stride - floor(centre / stride), in [0, 1)
      mask   [B, h, w]    True at the centre cells
      ignore [B, 1, h, w] True in cells covered by a don't-care region (per image a [M, 4] tensor in `ignore`):
                          there, no class counts as a negative (a peak inside one still counts as a positive)
    Boxes under 1 px wide or high, or with their centre off the map, are skipped. Two objects on one centre cell:
    the later one's size and offset win (both heat peaks stay).
    """
    h, w = out_hw
    b = len(boxes)
    heat = torch.zeros(b, num_classes, h, w, device=device)
    log_wh = torch.zeros(b, 2, h, w, device=device)
    offset = torch.zeros(b, 2, h, w, device=device)
    mask = torch.zeros(b, h, w, dtype=torch.bool, device=device)
    for i, image_boxes in enumerate(boxes):
        for x1, y1, x2, y2, cls in image_boxes.detach().double().cpu().tolist():
            bw, bh = x2 - x1, y2 - y1
            c = int(cls)
            if bw < 1 or bh < 1 or not 0 <= c < num_classes:
                continue
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            col, row = math.floor(cx), math.floor(cy)
            if not (0 <= col < w and 0 <= row < h):
                continue
            # CenterNet: radius from the box size in (ceiled) map cells, truncated to an int, at least 0.
            radius = max(0, int(gaussian_radius(math.ceil(bh / stride), math.ceil(bw / stride))))
            _splat(heat[i, c], col, row, radius)
            log_wh[i, :, row, col] = torch.tensor([math.log(bw / stride), math.log(bh / stride)])
            offset[i, :, row, col] = torch.tensor([cx - col, cy - row])
            mask[i, row, col] = True
    dont_care = torch.zeros(b, 1, h, w, dtype=torch.bool, device=device)
    for i, regions in enumerate(ignore or []):
        for x1, y1, x2, y2 in regions.detach().double().cpu().tolist():
            # Cells whose centre lies inside the region (at least the cell containing the region's centre).
            c0, c1 = max(0, math.ceil(x1 / stride - 0.5)), min(w, math.floor(x2 / stride - 0.5) + 1)
            r0, r1 = max(0, math.ceil(y1 / stride - 0.5)), min(h, math.floor(y2 / stride - 0.5) + 1)
            if c1 <= c0 or r1 <= r0:
                cc, rr = math.floor((x1 + x2) / 2 / stride), math.floor((y1 + y2) / 2 / stride)
                c0, c1, r0, r1 = cc, cc + 1, rr, rr + 1
            if c0 < w and r0 < h and c1 > 0 and r1 > 0:
                dont_care[i, 0, max(r0, 0):r1, max(c0, 0):c1] = True
    return {"heat": heat, "log_wh": log_wh, "offset": offset, "mask": mask, "ignore": dont_care}


def _split_detection(raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """DetectionHead.split by channel counts: [heat C | log_wh 2 | offset 2] (no head instance needed)."""
    c = raw.shape[1] - 4
    return raw[:, :c], raw[:, c : c + 2], raw[:, c + 2 :]


def heatmap_focal_loss(logits: Tensor, heat: Tensor, alpha: float = 2.0, beta: float = 4.0,
                       ignore: Tensor | None = None, class_weights: Tensor | None = None) -> Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, summed and divided by the number of peaks (>= 1).

    Uses log-sigmoid instead of log(clamp(sigmoid)): exact and finite for any logit. `ignore` (bool, broadcast
    to heat) removes the negative term in don't-care regions. `class_weights` [C] scales each class's channel, so
    that a rare class (70 people beside 4,000 cars) is not drowned by the common one.
    """
    logits = logits.float()
    p = torch.sigmoid(logits)
    pos = heat == 1
    pos_loss = (1 - p).pow(alpha) * F.logsigmoid(logits)
    neg_loss = (1 - heat).pow(beta) * p.pow(alpha) * F.logsigmoid(-logits)
    if ignore is not None:
        neg_loss = neg_loss * (~ignore).to(neg_loss.dtype)
    per_pixel = torch.where(pos, pos_loss, neg_loss)
    if class_weights is not None:
        per_pixel = per_pixel * class_weights.to(per_pixel).view(1, -1, 1, 1)
    return -per_pixel.sum() / pos.sum().clamp(min=1)


def _masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean L1 over both channels at the mask cells (CenterNet's RegL1Loss); zero with graph if no cell."""
    if not bool(mask.any()):
        return _zero(pred)
    return F.l1_loss(pred.permute(0, 2, 3, 1)[mask].float(), target.permute(0, 2, 3, 1)[mask].float())


def detection_loss(
    raw: Tensor,
    targets: dict[str, Tensor],
    present: Tensor,
    wh_weight: float = 0.1,
    offset_weight: float = 1.0,
    class_weights: Sequence[float] | None = None,
) -> Tensor:
    """CenterNet loss on DetectionHead's raw [B, C+4, h, w]: heatmap focal + wh_weight * L1(log_wh) + offset L1.

    targets: `centernet_targets` for the whole batch (absent images' entries are ignored, whatever they hold).
    class_weights: per class, a factor on its heatmap loss (see `heatmap_focal_loss`).
    """
    if not bool(present.any()):
        return _zero(raw)
    heat_logits, log_wh, offset = _split_detection(raw[present])
    t = {k: v[present.to(v.device)].to(raw.device) for k, v in targets.items()}
    return (
        heatmap_focal_loss(heat_logits, t["heat"], ignore=t.get("ignore"),
                           class_weights=None if class_weights is None else torch.tensor(class_weights))
        + wh_weight * _masked_l1(log_wh, t["log_wh"], t["mask"])
        + offset_weight * _masked_l1(offset, t["offset"], t["mask"])
    )
