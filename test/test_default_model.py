"""The shipped default model: its card is complete and honest, and it perceives a real road frame sensibly.

Runs in a fresh clone (the model and the Udacity frames are in the repo), through the same runtime as the node.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from conftest import SAMPLES
from hydranet_ros.runtime.contract import card_path, default_model_path, load_contract
from hydranet_ros.runtime.engines import load_engine
from hydranet_ros.runtime.postprocess import Intrinsics, split_batch
from hydranet_ros.runtime.preprocess import make_batch

MODEL = default_model_path()
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason=f"no default model at {MODEL}")


@pytest.fixture(scope="module")
def outputs():
    engine = load_engine(MODEL, providers=["cpu"])
    frames = [cv2.cvtColor(cv2.imread(str(SAMPLES / n)), cv2.COLOR_BGR2RGB)
              for n in ("project_video_0750.jpg", "project_video_1050.jpg")]
    batch, boxes = make_batch(frames, engine.contract.input_width, engine.contract.input_height)
    raw = engine.run(batch)
    yield engine.contract, frames, boxes, raw
    engine.close()


def test_card_carries_sha_recipe_licences_and_held_out_metrics() -> None:
    contract = load_contract(MODEL)  # raises if the sha256 does not match the card
    card = yaml.safe_load(card_path(MODEL).read_text())
    assert [t.name for t in contract.tasks] == ["drivable_area", "lane_lines", "depth", "detections"]
    training = card["provenance"]["training"]
    assert training["steps"] >= 1000 and training["train_time_min"] > 0
    assert "licences" in card["provenance"] and "BDD100K" in str(card["provenance"]["licences"])
    assert card["provenance"]["weights"]["file"] == "best.safetensors"
    metrics = card["metrics"]
    held_out = metrics["held_out_real_vs_teachers"]["summary"]
    assert 0.5 < held_out["drivable_area/miou"] <= 1.0
    assert 0.0 < held_out["detections/recall"] <= 1.0
    kitti = metrics["kitti_lidar_depth_and_boxes"]["summary"]
    assert 0.0 < kitti["depth/abs_rel"] < 1.0 and 0.0 < kitti["depth/delta1"] <= 1.0
    assert metrics["inference_vs_teachers"]["median_ms"]["hydranet (4 tasks)"] > 0


def test_drivable_area_lies_on_the_road_ahead(outputs) -> None:
    contract, frames, boxes, raw = outputs
    for i, box in enumerate(boxes):
        drivable = raw["drivable_area"][i][box.pad_y:box.pad_y + box.new_h, box.pad_x:box.pad_x + box.new_w]
        h, w = drivable.shape
        top, bottom = drivable[: h // 3].mean(), drivable[2 * h // 3:, w // 4: 3 * w // 4].mean()
        assert bottom > 0.5 and top < 0.05, f"frame {i}: drivable {bottom:.2f} bottom centre, {top:.2f} top"


def test_depth_grows_towards_the_horizon(outputs) -> None:
    contract, frames, boxes, raw = outputs
    box = boxes[0]
    depth = raw["depth"][0][box.pad_y:box.pad_y + box.new_h, box.pad_x:box.pad_x + box.new_w]
    h, w = depth.shape
    road = [float(np.median(depth[int(h * f) - 2: int(h * f) + 2, w // 2 - 10: w // 2 + 10]))
            for f in (0.9, 0.8, 0.7, 0.62)]
    assert all(a < b for a, b in zip(road, road[1:], strict=False)), f"road depth bottom->up {road}"
    assert 2.0 < road[0] < 25.0  # canonical metres a few metres ahead of the bonnet


def test_cars_on_the_freeway_are_found(outputs) -> None:
    contract, frames, boxes, raw = outputs
    k = Intrinsics(1158.8, 1154.1, 669.6, 388.1)  # the Udacity camera (samples/udacity_camera_intrinsics.json)
    results = split_batch(raw, contract, boxes, [k, k], score_threshold=0.35)
    cars = [d for d in results[0].detections["detections"] if d.label == "vehicle"]
    assert cars, "no vehicle on project_video_0750 (two cars ahead on the right)"
    for d in cars:
        assert 0 <= d.x1 < d.x2 <= 1280 and 0 <= d.y1 < d.y2 <= 720
        assert d.y2 > 720 * 0.5  # on the road, not in the sky
