"""Evaluation metrics against hand-computed values (segmentation, depth, detection, box IoU, Markdown report)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hydranet_ros.train.kinds import markdown_table
from hydranet_ros.train.metrics import (
    DepthMetric,
    DetectionMetric,
    SegmentationMetric,
    box_iou,
)

# ---------------------------------------------------------------------------------------------------- segmentation

SEG_TARGET = np.array([[0, 0, 1, 1]] * 4)
SEG_PRED = np.array(
    [
        [0, 0, 0, 1],  # one class-1 pixel predicted as class 0
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [0, 0, 1, 1],
    ]
)
# Confusion (target x pred): 0->0: 8, 1->0: 1, 1->1: 7.
# IoU(0) = 8 / (8 target + 9 predicted - 8) = 8/9;  IoU(1) = 7 / (8 + 7 - 7) = 7/8
# mIoU = (8/9 + 7/8) / 2 = 127/144;  pixel accuracy = 15/16


def test_segmentation_hand_example() -> None:
    m = SegmentationMetric(["road", "car"])
    m.update(SEG_PRED, SEG_TARGET)
    r = m.result()
    assert r["iou"] == {"road": pytest.approx(8 / 9), "car": pytest.approx(7 / 8)}
    assert r["miou"] == pytest.approx(127 / 144)
    assert r["pixel_accuracy"] == pytest.approx(15 / 16)


def test_segmentation_ignore_index_excluded() -> None:
    target = SEG_TARGET.copy()
    target[0, 2] = 255  # the only wrong pixel: once ignored, everything is perfect
    pred = SEG_PRED.copy()
    m = SegmentationMetric(["road", "car"], ignore_index=255)
    m.update(pred, target)
    r = m.result()
    assert r["iou"] == {"road": 1.0, "car": 1.0}
    assert r["pixel_accuracy"] == 1.0
    assert m.confusion.sum() == 15


def test_segmentation_absent_class_is_none_and_excluded() -> None:
    m = SegmentationMetric(["road", "car", "sky"])
    m.update(SEG_PRED, SEG_TARGET)
    r = m.result()
    assert r["iou"]["sky"] is None
    assert r["miou"] == pytest.approx(127 / 144)  # not (8/9 + 7/8 + 0) / 3


def test_segmentation_class_only_predicted_scores_zero() -> None:
    pred = SEG_PRED.copy()
    pred[3, 3] = 2  # "sky" predicted once, never in the target: a real 0, not None
    m = SegmentationMetric(["road", "car", "sky"])
    m.update(pred, SEG_TARGET)
    r = m.result()
    assert r["iou"]["sky"] == 0.0
    # car: 6 TP, 8 target, 6 predicted -> 6/8
    assert r["miou"] == pytest.approx((8 / 9 + 6 / 8 + 0.0) / 3)


def test_segmentation_accumulation_equals_concatenation() -> None:
    rng = np.random.default_rng(0)
    a_pred, a_tgt = rng.integers(0, 3, (5, 7)), rng.integers(0, 3, (5, 7))
    b_pred, b_tgt = rng.integers(0, 3, (9, 7)), rng.integers(0, 3, (9, 7))
    a_tgt[0, :3] = 255
    streamed = SegmentationMetric(["a", "b", "c"])
    streamed.update(a_pred, a_tgt)
    streamed.update(b_pred, b_tgt)
    whole = SegmentationMetric(["a", "b", "c"])
    whole.update(np.concatenate([a_pred, b_pred]), np.concatenate([a_tgt, b_tgt]))
    assert streamed.result() == whole.result()
    # ...which differs from averaging per-image mIoUs (the test would not notice a per-image mean otherwise).
    per_image = []
    for p, t in ((a_pred, a_tgt), (b_pred, b_tgt)):
        one = SegmentationMetric(["a", "b", "c"])
        one.update(p, t)
        per_image.append(one.result()["miou"])
    assert whole.result()["miou"] != pytest.approx(np.mean(per_image), abs=1e-9)


def test_segmentation_rejects_out_of_range_ids() -> None:
    m = SegmentationMetric(["road", "car"])
    with pytest.raises(ValueError, match="class id"):
        m.update(np.full((2, 2), 2), np.zeros((2, 2), int))


# ------------------------------------------------------------------------------------------------------------ depth


def test_depth_hand_example() -> None:
    # pixel:       a     b     c (no GT)  d (pred "beyond range")
    target = np.array([[2.0, 4.0], [0.0, 12.0]])
    pred = np.array([[2.2, 4.0], [5.0, np.inf]])
    # Valid: a, b, d. With max_depth=20, d's prediction is clipped to 20.
    #   a: err 0.2, rel 0.1,   ratio 1.1
    #   b: err 0,   rel 0,     ratio 1
    #   d: err 8,   rel 8/12,  ratio 20/12 = 1.667 (>1.5625=1.25², <1.953=1.25³)
    # AbsRel = (0.1 + 0 + 2/3) / 3;  SqRel = (0.04/2 + 0 + 64/12) / 3;  RMSE = sqrt((0.04 + 0 + 64) / 3)
    # RMSE_log = sqrt((ln 1.1² + 0 + ln(20/12)²) / 3);  δ1 = δ2 = 2/3, δ3 = 1
    m = DepthMetric(max_depth=20.0)
    m.update(pred, target)
    r = m.result()
    assert r["pixels"] == 3
    assert r["abs_rel"] == pytest.approx((0.1 + 2 / 3) / 3)
    assert r["sq_rel"] == pytest.approx((0.02 + 64 / 12) / 3)
    assert r["rmse"] == pytest.approx(math.sqrt(64.04 / 3))
    assert r["rmse_log"] == pytest.approx(math.sqrt((math.log(1.1) ** 2 + math.log(20 / 12) ** 2) / 3))
    assert (r["delta1"], r["delta2"], r["delta3"]) == pytest.approx((2 / 3, 2 / 3, 1.0))


def test_depth_target_range_and_nan() -> None:
    m = DepthMetric(min_depth=1.0, max_depth=10.0)
    # 0.5 below min, 11 above max, nan and inf targets: all invalid; only the 5.0 pixel counts.
    m.update(np.full(5, 5.0), np.array([0.5, 11.0, np.nan, np.inf, 5.0]))
    assert m.result()["pixels"] == 1
    assert m.result()["abs_rel"] == 0.0


def test_depth_is_pixel_weighted() -> None:
    m = DepthMetric()
    m.update(np.array([2.0]), np.array([1.0]))  # 1 valid pixel, AbsRel 1
    m.update(np.array([3.0, 3.0, 3.0, 0.0]), np.array([3.0, 3.0, 3.0, 0.0]))  # 3 valid pixels, AbsRel 0
    r = m.result()
    assert r["pixels"] == 4
    assert r["abs_rel"] == pytest.approx(1 / 4)  # a per-image mean would give 1/2
    assert r["rmse"] == pytest.approx(math.sqrt(1 / 4))
    assert r["delta1"] == pytest.approx(3 / 4)


def test_depth_empty_is_nan() -> None:
    r = DepthMetric().result()
    assert r["pixels"] == 0 and math.isnan(r["abs_rel"])


# --------------------------------------------------------------------------------------------------------- box_iou


def test_box_iou_hand_values() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10], [0, 0, 5, 10]])
    # identical 1; disjoint 0; shifted by half: 50 / (100 + 100 - 50) = 1/3; left half inside: 50 / 100
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 0.0, 1 / 3, 0.5]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)
    assert box_iou(a, np.array([[3, 3, 3, 3]]))[0, 0] == 0.0  # degenerate box, no division by zero


# ------------------------------------------------------------------------------------------------------- detection


def _shifted(box: list[float], dx: float) -> list[float]:
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


G0, G1, G2 = [0, 0, 10, 10], [100, 0, 110, 10], [200, 0, 210, 10]
# A 10x10 box shifted by s along x has IoU (10 - s) / (10 + s) with the original.


def test_detection_hand_ap() -> None:
    gts = np.array([G0, G1, G2])
    preds = np.array([_shifted(G1, 2), _shifted(G0, 0), _shifted(G2, 1), _shifted(G1, 5)])
    scores = np.array([0.7, 0.9, 0.6, 0.8])  # deliberately not sorted
    # By descending score:
    #   0.9 G0 IoU 1    TP  cum TP/FP 1/0  P 1     R 1/3
    #   0.8 G1 IoU 1/3  FP  1/1            P 1/2   R 1/3
    #   0.7 G1 IoU 2/3  TP  2/1            P 2/3   R 2/3
    #   0.6 G2 IoU 9/11 TP  3/1            P 3/4   R 1
    # Envelope (max precision at recall >= r): 1, 3/4, 3/4, 3/4.
    # AP = 1/3 * 1 + 1/3 * 3/4 + 1/3 * 3/4 = 5/6   (raw precisions would give (1 + 2/3 + 3/4)/3 = 0.806)
    m = DetectionMetric(["car"])
    m.update(preds, scores, np.zeros(4, int), gts, np.zeros(3, int))
    r = m.result()
    car = r["classes"]["car"]
    assert car["ap"] == pytest.approx(5 / 6)
    assert (car["recall"], car["num_gt"], car["tp"], car["fp"]) == (1.0, 3, 3, 1)
    assert r["map"] == pytest.approx(5 / 6)


def test_detection_duplicate_is_fp() -> None:
    # 0.9 G0 TP (P 1, R 1/2); 0.8 G0 again: FP (P 1/2, R 1/2); 0.7 G1 TP (P 2/3, R 1)
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    m = DetectionMetric(["car"])
    m.update(
        np.array([G0, _shifted(G0, 1), G1]), np.array([0.9, 0.8, 0.7]), np.zeros(3, int), np.array([G0, G1]), [0, 0]
    )
    car = m.result()["classes"]["car"]
    assert (car["tp"], car["fp"]) == (2, 1)
    assert car["ap"] == pytest.approx(5 / 6)


def test_detection_wrong_class_is_fp_for_its_class() -> None:
    m = DetectionMetric(["car", "person"])
    m.update(np.array([G0]), np.array([0.9]), np.array([1]), np.array([G0]), np.array([0]))
    r = m.result()
    assert r["classes"]["car"] == {"ap": 0.0, "recall": 0.0, "num_gt": 1, "tp": 0, "fp": 0}
    assert r["classes"]["person"] == {"ap": None, "recall": None, "num_gt": 0, "tp": 0, "fp": 1}
    assert r["map"] == 0.0  # person has no GT: not in the mean


def test_detection_ignored_gt_neither_tp_nor_fp() -> None:
    m = DetectionMetric(["car"])
    # 0.9 hits the ignored G0: dropped. 0.8 hits G1: TP. Were the first a FP, AP would be 1/2.
    m.update(np.array([G0, G1]), np.array([0.9, 0.8]), [0, 0], np.array([G0, G1]), [0, 0], gt_ignore=[True, False])
    car = m.result()["classes"]["car"]
    assert (car["num_gt"], car["tp"], car["fp"]) == (1, 1, 0)
    assert car["ap"] == pytest.approx(1.0)


def test_detection_image_without_predictions_lowers_recall() -> None:
    m = DetectionMetric(["car"])
    m.update(np.array([G0]), np.array([0.9]), [0], np.array([G0]), [0])
    m.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), np.array([G1]), [0])
    car = m.result()["classes"]["car"]
    assert car["recall"] == pytest.approx(0.5)
    assert car["ap"] == pytest.approx(0.5)


def test_detection_map_averages_only_classes_with_gt() -> None:
    m = DetectionMetric(["car", "person", "bike"])
    # car: 1 GT found (AP 1). person: 2 GTs, one found (AP 1/2). bike: no GT, one FP.
    m.update(
        np.array([G0, G1, G2]),
        np.array([0.9, 0.8, 0.7]),
        [0, 1, 2],
        np.array([G0, G1, _shifted(G1, 50)]),
        [0, 1, 1],
    )
    r = m.result()
    assert r["classes"]["car"]["ap"] == pytest.approx(1.0)
    assert r["classes"]["person"]["ap"] == pytest.approx(0.5)
    assert r["classes"]["bike"]["ap"] is None
    assert r["map"] == pytest.approx(0.75)  # (1 + 1/2) / 2, not / 3


def test_detection_empty_and_bad_input() -> None:
    assert DetectionMetric(["car"]).result()["map"] is None
    with pytest.raises(ValueError, match="class id"):
        DetectionMetric(["car"]).update(np.array([G0]), [0.5], [3], np.zeros((0, 4)), [])


# ------------------------------------------------------------------------------------------------------- markdown


def test_markdown_table_renders_all_kinds() -> None:
    seg = SegmentationMetric(["road", "car", "sky"])
    seg.update(SEG_PRED, SEG_TARGET)
    depth = DepthMetric()
    depth.update(np.array([2.0]), np.array([1.0]))
    det = DetectionMetric(["car", "person"])
    det.update(np.array([G0]), np.array([0.9]), [0], np.array([G0, G1]), [0, 0])
    md = markdown_table(
        {
            "segmentation": {"semseg": seg.result()},
            "depth": {"depth": depth.result()},
            "detection": {"det": det.result()},
        }
    )
    for text in ("### Segmentation", "### Depth", "### Detection", "road", "sky", "person", "semseg", "det"):
        assert text in md
    assert "| semseg | road | 88.9 |" in md  # 8/9
    assert "| semseg | car | 87.5 |" in md
    assert "| semseg | sky | – |" in md
    assert "| depth | 1.000 | 1.000 | 1.000 | 0.693 | 0.0 | 0.0 | 0.0 | 1 |" in md  # 2 m for 1 m: ratio 2
    assert "| det | car | 50.0 | 50.0 | 2 |" in md
    assert "**mAP@0.5**" in md
    assert markdown_table({"depth": {"d": depth.result()}}).count("###") == 1
