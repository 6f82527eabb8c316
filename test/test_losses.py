"""Training losses and task weightings: partial labels, hand cases, CenterNet round trip, and each weighting
strategy moving the weights the way its paper says."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hydranet_ros.model.heads import DetectionHead
from hydranet_ros.train.balancing import (
    DWAWeighting,
    FixedWeighting,
    GradNormWeighting,
    UncertaintyWeighting,
    build_weighting,
    pcgrad,
)
from hydranet_ros.train.kinds import training_of
from hydranet_ros.train.losses import (
    centernet_targets,
    depth_loss,
    detection_loss,
    heatmap_focal_loss,
    segmentation_loss,
)

LOSS_OF_KIND = {"segmentation": segmentation_loss, "depth": depth_loss, "detection": detection_loss}


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


PRESENT = torch.tensor([True, False, True])


def _seg_case() -> tuple[Tensor, Tensor]:
    logits = torch.randn(3, 4, 4, 6, requires_grad=True)
    target = torch.randint(0, 4, (3, 16, 24))
    target[:, :2] = 255
    return logits, target


def _depth_case(hw: tuple[int, int] = (8, 12)) -> tuple[Tensor, Tensor]:
    pred = (torch.rand(3, 1, 4, 6) * 10 + 0.5).requires_grad_()
    target = torch.rand(3, *hw) * 20 + 0.5
    target[torch.rand_like(target) < 0.5] = 0.0  # sparse, like LiDAR
    return pred, target


BOXES = [
    torch.tensor([[10.0, 12.0, 50.5, 40.0, 0], [60.0, 20.0, 90.0, 70.0, 1]]),
    torch.tensor([[5.0, 5.0, 30.0, 22.0, 1]]),
    torch.tensor([[33.3, 41.7, 77.9, 60.2, 0]]),
]
IMAGE_HW = (96, 128)
STRIDE = 4
OUT_HW = (IMAGE_HW[0] // STRIDE, IMAGE_HW[1] // STRIDE)


def _det_case() -> tuple[Tensor, dict[str, Tensor]]:
    raw = torch.randn(3, 2 + 4, *OUT_HW, requires_grad=True)
    return raw, centernet_targets(BOXES, 2, OUT_HW, STRIDE)


CASES = {  # case: (head type, raw and target maker, loss options)
    "ce": ("segmentation", _seg_case, {}),
    "focal": ("segmentation", _seg_case, {"kind": "focal"}),
    "log_l1": ("depth", _depth_case, {"kind": "log_l1"}),
    "berhu": ("depth", _depth_case, {"kind": "berhu"}),
    "silog": ("depth", _depth_case, {"kind": "silog"}),
    "detection": ("detection", _det_case, {}),
}


# --- partial labels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_absent_images_get_exactly_zero_gradient(case: str) -> None:
    head_type, make, options = CASES[case]
    raw, target = make()
    loss = LOSS_OF_KIND[head_type](raw, target, PRESENT, **options)
    loss.backward()
    assert loss.item() > 0
    assert torch.equal(raw.grad[1], torch.zeros_like(raw.grad[1]))
    assert raw.grad[0].abs().sum() > 0 and raw.grad[2].abs().sum() > 0


@pytest.mark.parametrize("case", CASES)
def test_all_absent_is_a_zero_that_keeps_the_graph(case: str) -> None:
    head_type, make, options = CASES[case]
    raw, target = make()
    loss = LOSS_OF_KIND[head_type](raw, target, torch.zeros(3, dtype=torch.bool), **options)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(raw.grad, torch.zeros_like(raw))


def test_absent_image_with_nan_raw_stays_out_of_the_loss() -> None:
    raw, target = _seg_case()
    with torch.no_grad():
        raw[1] = float("nan")
    loss = segmentation_loss(raw, target, PRESENT)
    loss.backward()
    assert torch.isfinite(loss) and torch.equal(raw.grad[1], torch.zeros_like(raw.grad[1]))


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="ce, focal"):
        segmentation_loss(*_seg_case(), PRESENT, kind="dice")
    with pytest.raises(ValueError, match="log_l1, berhu, silog"):
        depth_loss(*_depth_case(), PRESENT, kind="l2")
    with pytest.raises(ValueError, match="segmentation, depth, detection"):
        training_of("keypoints")


# --- segmentation -----------------------------------------------------------------------------------------------


def test_segmentation_ce_matches_torch_on_a_hand_case() -> None:
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2], same size as the target: no resize
    target = torch.tensor([[[0, 1]]])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.e / (1 + math.e))) / 2
    loss = segmentation_loss(logits, target, torch.tensor([True]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)


def test_segmentation_upsamples_like_the_export_and_honours_ignore_index() -> None:
    logits, target = _seg_case()
    up = F.interpolate(logits[[0, 2]], size=(16, 24), mode="bilinear", align_corners=False)
    expected = F.cross_entropy(up, target[[0, 2]], ignore_index=255)
    assert segmentation_loss(logits, target, PRESENT).item() == pytest.approx(expected.item(), rel=1e-5)
    changed = target.clone()
    changed[target == 255] = 1  # labels at the ignored rows now count: the loss must change
    assert segmentation_loss(logits, changed, PRESENT).item() != pytest.approx(expected.item(), rel=1e-5)
    raw_target = target.clone()
    raw_target[:, :2] = 7  # out of range unless ignored: the custom ignore_index must be honoured
    assert segmentation_loss(logits, raw_target, PRESENT, ignore_index=7).item() == pytest.approx(expected.item())


def test_focal_is_at_most_ce_and_equals_it_at_gamma_zero() -> None:
    logits, target = _seg_case()
    ce = segmentation_loss(logits, target, PRESENT)
    assert segmentation_loss(logits, target, PRESENT, kind="focal", gamma=0.0).item() == pytest.approx(ce.item())
    assert segmentation_loss(logits, target, PRESENT, kind="focal", gamma=2.0).item() < ce.item()


# --- depth --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["log_l1", "berhu", "silog"])
def test_depth_zero_when_perfect_positive_otherwise_blind_to_invalid_pixels(kind: str) -> None:
    target = torch.rand(2, 6, 8) * 20 + 0.5
    target[:, ::2] = 0.0
    present = torch.tensor([True, True])
    perfect = torch.where(target > 0, target, torch.full_like(target, 3.0))[:, None]
    assert depth_loss(perfect, target, present, kind).item() == pytest.approx(0.0, abs=2e-3)
    noisy = perfect * (1 + 0.3 * torch.rand_like(perfect))
    loss = depth_loss(noisy, target, present, kind)
    assert loss.item() > 0.01
    moved = noisy.clone()
    moved[:, 0][target == 0] = 77.0  # only where the target is invalid
    assert depth_loss(moved, target, present, kind).item() == pytest.approx(loss.item(), rel=1e-6)


def test_depth_log_l1_hand_case() -> None:
    pred = torch.tensor([[[[2.0, 1.0, 5.0]]]])
    target = torch.tensor([[[1.0, 4.0, 0.0]]])
    expected = (math.log(2) + math.log(4)) / 2
    assert depth_loss(pred, target, torch.tensor([True])).item() == pytest.approx(expected, rel=1e-6)


def test_depth_log_l1_weighs_a_sparse_lidar_image_like_a_dense_one() -> None:
    # Image 0 dense (all 48 pixels valid, error log 2), image 1 sparse LiDAR-like (3 valid pixels, error log 4):
    # per image, then over images -> (log 2 + log 4) / 2, not the pixel-weighted (48 log 2 + 3 log 4) / 51.
    target = torch.full((2, 6, 8), 10.0)
    target[1] = 0.0
    target[1, 2, 1:4] = 10.0
    pred = torch.stack([torch.full((6, 8), 20.0), torch.full((6, 8), 40.0)])[:, None]
    loss = depth_loss(pred, target, torch.tensor([True, True]), "log_l1").item()
    assert loss == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-6)
    # An image with no valid pixel at all takes no part (it is not a zero pulling the mean down).
    target[1] = 0.0
    assert depth_loss(pred, target, torch.tensor([True, True]), "log_l1").item() == pytest.approx(math.log(2))


def test_depth_silog_ignores_global_scale_more_than_log_l1() -> None:
    target = torch.rand(1, 6, 8) * 20 + 0.5
    scaled = 2.0 * target[:, None]
    present = torch.tensor([True])
    # d = log 2 everywhere: silog = 10 sqrt((1 - 0.85) log^2 2), log_l1 = log 2
    silog = depth_loss(scaled, target, present, "silog").item()
    assert silog == pytest.approx(10 * math.sqrt(0.15) * math.log(2), rel=1e-4)
    assert depth_loss(scaled, target, present, "log_l1").item() == pytest.approx(math.log(2), rel=1e-5)


# --- detection ----------------------------------------------------------------------------------------------------


def _perfect_raw(targets: dict[str, Tensor]) -> Tensor:
    heat_logits = torch.where(targets["heat"] == 1, torch.tensor(10.0), torch.tensor(-10.0))
    return torch.cat([heat_logits, targets["log_wh"], targets["offset"]], dim=1)


def test_centernet_targets_decode_back_to_the_boxes() -> None:
    targets = centernet_targets(BOXES, 2, OUT_HW, STRIDE)
    assert targets["heat"].shape == (3, 2, *OUT_HW) and targets["mask"].shape == (3, *OUT_HW)
    assert targets["heat"].min() >= 0.0 and targets["heat"].max() == 1.0
    assert targets["mask"].sum() == 4 and (targets["heat"] == 1).sum() == 4
    offsets = targets["offset"].permute(0, 2, 3, 1)[targets["mask"]]
    assert (offsets >= 0).all() and (offsets < 1).all()

    head = DetectionHead(8, "det", ["car", "person"], stride=STRIDE, max_detections=10)
    decoded = head.decode(_perfect_raw(targets), IMAGE_HW)
    for image_boxes, rows in zip(BOXES, decoded, strict=True):
        found = rows[rows[:, 4] > 0.5]
        assert len(found) == len(image_boxes)
        found = found[found[:, 0].argsort()]
        expected = image_boxes[image_boxes[:, 0].argsort()]
        assert (found[:, :4] - expected[:, :4]).abs().max() < 0.5
        assert torch.equal(found[:, 5], expected[:, 4])


def test_gaussian_peaks_are_exactly_one_at_the_centre_cells() -> None:
    targets = centernet_targets(BOXES[:1], 2, OUT_HW, STRIDE)
    for x1, y1, x2, y2, c in BOXES[0].tolist():
        col, row = int((x1 + x2) / 2 // STRIDE), int((y1 + y2) / 2 // STRIDE)
        assert targets["heat"][0, int(c), row, col] == 1.0 and targets["mask"][0, row, col]
        assert targets["heat"][0, int(c), row, col + 1] < 1.0  # a Gaussian, not a plateau
        assert targets["log_wh"][0, 0, row, col].item() == pytest.approx(math.log((x2 - x1) / STRIDE), rel=1e-6)


def test_centernet_targets_skip_degenerate_and_off_map_boxes() -> None:
    boxes = [torch.tensor([[10.0, 10.0, 10.5, 30.0, 0], [200.0, 10.0, 260.0, 30.0, 0], [-40.0, 5, -10, 9, 0]])]
    targets = centernet_targets(boxes, 1, OUT_HW, STRIDE)
    assert not targets["mask"].any() and targets["heat"].max() == 0


def test_detection_loss_lower_for_the_perfect_prediction() -> None:
    raw, targets = _det_case()
    present = torch.ones(3, dtype=torch.bool)
    perfect = detection_loss(_perfect_raw(targets), targets, present)
    assert perfect.item() < 0.05 < detection_loss(raw, targets, present).item()


def test_detection_class_weights_scale_only_their_class() -> None:
    raw, targets = _det_case()
    present = torch.ones(3, dtype=torch.bool)
    heat = raw[:, :2]
    base = [heatmap_focal_loss(heat[:, c:c + 1], targets["heat"][:, c:c + 1]) for c in range(2)]
    npeaks = (targets["heat"] == 1).sum().clamp(min=1)
    per_class = [b * (targets["heat"][:, c] == 1).sum().clamp(min=1) / npeaks for c, b in enumerate(base)]
    plain = detection_loss(raw, targets, present)
    weighted = detection_loss(raw, targets, present, class_weights=[1.0, 4.0])
    # Class 1's heatmap term counts four times; the size and offset terms are untouched.
    assert (weighted - plain).item() == pytest.approx(3.0 * per_class[1].item(), rel=1e-4)
    assert detection_loss(raw, targets, present, class_weights=[1.0, 1.0]).item() == pytest.approx(plain.item())


# --- task weighting -----------------------------------------------------------------------------------------------


def test_fixed_weighting_and_builder() -> None:
    weighting = build_weighting("fixed", ["seg", "depth"], weights={"seg": 0.5})
    total, weights = weighting.combine({"seg": torch.tensor(2.0), "depth": torch.tensor(3.0)})
    assert total.item() == pytest.approx(4.0) and weights == {"seg": 0.5, "depth": 1.0}
    assert isinstance(FixedWeighting({"a": 1.0}).combine({"a": torch.tensor(1.0)})[0], Tensor)
    with pytest.raises(ValueError, match="fixed, uncertainty, dwa, gradnorm"):
        build_weighting("nash", ["seg"])
    with pytest.raises(ValueError, match="temperature"):
        build_weighting("dwa", ["seg"], temp=2.0)
    with pytest.raises(KeyError):
        weighting.combine({"det": torch.tensor(1.0)})


def test_uncertainty_weights_the_noisy_task_down_and_converges_to_log_loss() -> None:
    weighting = build_weighting("uncertainty", ["big", "small"])
    assert isinstance(weighting, UncertaintyWeighting)
    dummy = nn.Parameter(torch.ones(()))
    optimizer = torch.optim.SGD([*weighting.parameters(), dummy], lr=0.05)
    for _ in range(400):
        total, weights = weighting.combine({"big": 10.0 * dummy.detach(), "small": 0.1 * dummy.detach()})
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert weights["big"] < 1.0 < weights["small"]
    assert weighting.log_vars.detach().tolist() == pytest.approx([math.log(10), math.log(0.1)], abs=1e-3)


def test_dwa_favours_the_slower_task_and_keeps_the_sum() -> None:
    weighting = build_weighting("dwa", ["slow", "fast"], temperature=2.0)
    assert isinstance(weighting, DWAWeighting)
    losses = {"slow": torch.tensor(1.0), "fast": torch.tensor(1.0)}
    for slow, fast in [(1.0, 1.0), (0.95, 0.5)]:
        assert weighting.combine(losses)[1] == {"slow": 1.0, "fast": 1.0}  # first two epochs: weights 1
        weighting.epoch_end({"slow": slow, "fast": fast})
    weights = weighting.combine(losses)[1]
    assert weights["slow"] > 1.0 > weights["fast"]
    assert sum(weights.values()) == pytest.approx(2.0)
    expected = 2 * math.exp(0.95 / 2) / (math.exp(0.95 / 2) + math.exp(0.5 / 2))
    assert weights["slow"] == pytest.approx(expected, rel=1e-6)


def test_gradnorm_lowers_the_large_gradient_task_and_keeps_the_sum() -> None:
    shared = nn.Parameter(torch.randn(4))
    weighting = build_weighting("gradnorm", ["loud", "quiet"], shared_parameter=shared, alpha=1.5)
    assert isinstance(weighting, GradNormWeighting)
    assert list(weighting.parameters()) == [weighting.weights]  # the shared layer is not the weighting's
    # Adam, as in the paper: the L1 GradNorm loss has sign-like gradients, plain SGD just oscillates around the optimum
    optimizer = torch.optim.Adam(weighting.parameters(), lr=0.01)
    for _ in range(200):
        base = ((shared - 1.0) ** 2).sum()
        losses = {"loud": 10.0 * base, "quiet": base}  # gradients on `shared` differ 10x, same loss ratio
        total, weights = weighting.combine(losses)
        weighting.gradnorm_step(losses, optimizer)
        total.backward()  # the graph survived gradnorm_step
    assert weights["loud"] < 0.5 and weights["quiet"] > 1.5  # from 1 and 1
    assert sum(weights.values()) == pytest.approx(2.0, rel=1e-5)
    # balanced gradient norms: w_loud * 10 = w_quiet, so w = (2/11, 20/11)
    assert weighting.weights.detach().tolist() == pytest.approx([2 / 11, 20 / 11], abs=0.05)


def _two_task_grads(g1: Tensor, g2: Tensor) -> tuple[nn.Parameter, dict[str, Tensor]]:
    shared = nn.Parameter(torch.ones(len(g1)))
    return shared, {"a": (g1 * shared).sum(), "b": (g2 * shared).sum()}


def test_pcgrad_removes_conflicts_and_leaves_agreement_alone() -> None:
    g1, g2 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([-4.0, 1.0, 0.5])
    assert g1 @ g2 < 0 and (g1 + g2) @ g1 < 0  # the plain sum would undo task a
    shared, losses = _two_task_grads(g1, g2)
    pcgrad(losses, [shared])
    assert shared.grad @ g1 >= 0 and shared.grad @ g2 >= 0
    assert not torch.allclose(shared.grad, g1 + g2)

    g3 = torch.tensor([1.0, 1.0, 0.0])
    shared, losses = _two_task_grads(g1, g3)
    head = nn.Parameter(torch.ones(()))  # a non-shared parameter still gets its plain gradient
    losses["b"] = losses["b"] * head
    pcgrad(losses, [shared])
    assert torch.allclose(shared.grad, g1 + g3)
    assert head.grad is not None and head.grad.item() == pytest.approx(2.0)  # d(head * g3 . shared) / d head
