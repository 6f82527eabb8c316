"""The shipped default model: its card is complete and honest, and it perceives a real road frame sensibly.

Runs in a fresh clone (the model and the Udacity frames are in the repo), through the same runtime as the node.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from conftest import SAMPLES
from hydranet_ros.core.contract import card_path, default_model_path
from hydranet_ros.core.geometry import Intrinsics
from hydranet_ros.runtime.contract import load_contract
from hydranet_ros.runtime.engines import load_engine
from hydranet_ros.runtime.postprocess import split_batch
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


def test_card_carries_sha_recipe_licences_and_the_quality_report() -> None:
    contract = load_contract(MODEL)  # raises if the sha256 does not match the card
    card = yaml.safe_load(card_path(MODEL).read_text())
    assert [t.name for t in contract.tasks] == ["drivable_area", "lane_lines", "depth", "detections"]
    training = card["provenance"]["training"]
    assert training["steps"] >= 1000 and training["train_time_min"] > 0
    licences = str(card["provenance"]["licences"])
    assert "KITTI" in licences and "non-commercial" in licences and "BDD100K" in licences
    assert card["provenance"]["weights"]["file"] in ("best.safetensors", "last.safetensors")
    quality = card["metrics"]["quality"]
    assert quality["sha256"] == contract.sha256, "the quality report must be of this very file"
    kitti = quality["kitti101_val"]
    assert kitti["frames"] == 21
    for band in ("0-80 m", "0-20 m", "20-40 m", "40-80 m"):
        assert kitti["depth"][band]["pixels"] > 1000 and 0.0 < kitti["depth"][band]["abs_rel"] < 1.0
    assert {c: r["objects"] for c, r in kitti["detection"]["classes"].items()} == {
        "vehicle": 45, "pedestrian": 13, "cyclist": 4}
    assert {"night", "tunnel", "glare", "snow", "fog"} <= set(quality["real_heldout"])
    assert set(quality["targets"]) == {"kitti_depth_abs_rel", "kitti_depth_delta1", "kitti_vehicle_recall",
                                       "kitti_person_recall", "real_drivable_miou_min", "real_vehicle_recall"}
    before = card["metrics"]["quality_previous_default"]  # the same report for the model this one replaced
    assert before["sha256"] != contract.sha256 and set(before["real_heldout"]) == set(quality["real_heldout"])
    assert before["kitti101_val"]["depth"]["0-80 m"]["pixels"] == kitti["depth"]["0-80 m"]["pixels"]
    assert metrics_ms(card) > 0


def metrics_ms(card: dict) -> float:
    return card["metrics"]["inference_vs_teachers"]["median_ms"]["hydranet (4 tasks)"]


def test_the_shipped_weights_are_the_onnx_models_and_run_alike_on_torch(outputs) -> None:
    """models/*.safetensors (the torch engine's form, for the GPU) holds the weights the ONNX was exported from,
    by the card's hash, and gives the same outputs as ONNX Runtime on the same real frames."""
    contract, frames, _, raw = outputs
    weights = MODEL.with_suffix(".safetensors")
    card = yaml.safe_load(card_path(MODEL).read_text())
    assert load_contract(weights).sha256 == card["provenance"]["weights"]["sha256"]
    torch_engine = load_engine(weights, device="cpu")
    batch, _ = make_batch(frames, contract.input_width, contract.input_height)
    got = torch_engine.run(batch)
    torch_engine.close()
    assert set(got) == set(raw)
    for name, ref in raw.items():
        if ref.dtype.kind in "iu":
            assert np.mean(got[name] == ref) > 0.99, name
        elif ref.ndim == 3 and ref.shape[-1] == 6:  # detection rows x1 y1 x2 y2 score class, by score
            # Rows far below any threshold come in an order set by rounding; the ones the node can publish do not.
            for a, b in zip(got[name], ref, strict=True):
                kept = b[:, 4] >= 0.1
                assert kept.sum() >= 1
                np.testing.assert_allclose(a[:kept.sum()], b[kept], rtol=1e-3, atol=1e-2, err_msg=name)
        else:
            np.testing.assert_allclose(got[name], ref, rtol=1e-2, atol=1e-2, err_msg=name)


def test_the_readme_table_is_the_cards_report() -> None:
    """The README's model table is regenerated from the card (bench/quality.py --readme), never edited by hand."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("quality", REPO / "bench" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    card = yaml.safe_load(card_path(MODEL).read_text())
    readme = (REPO / "README.md").read_text()
    block = readme.split(quality.README_START, 1)[1].split(quality.README_END, 1)[0]
    assert block.strip() == quality.markdown(card["metrics"]["quality"]).strip()


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


def test_a_person_on_a_real_street_is_found(shared_assets) -> None:
    """kitti101 val frame 000085 (never trained on: split.json keeps it for evaluation): a pedestrian on the
    pavement of a town street, a cyclist further ahead. The node's pipeline (letterbox, one pass, the default
    score_threshold) must box the pedestrian."""
    from hydranet_ros.train.importers import read_kitti_intrinsics
    from hydranet_ros.train.metrics import box_iou

    root = shared_assets / "kitti101"
    assert "000085" in yaml.safe_load((root / "split.json").read_text())["val"]
    labels = [ln.split() for ln in (root / "label_2/000085.txt").read_text().splitlines()]
    people = np.array([[float(v) for v in f[4:8]] for f in labels if f[0] == "Pedestrian"])
    assert len(people) == 1
    frame = cv2.cvtColor(cv2.imread(str(root / "image_2/000085.jpg")), cv2.COLOR_BGR2RGB)
    engine = load_engine(MODEL, providers=["cpu"])
    try:
        batch, boxes = make_batch([frame], engine.contract.input_width, engine.contract.input_height)
        k = Intrinsics(*read_kitti_intrinsics(root / "calib/000085.txt"))
        result = split_batch(engine.run(batch), engine.contract, boxes, [k], score_threshold=0.35)[0]
    finally:
        engine.close()
    found = np.array([[d.x1, d.y1, d.x2, d.y2] for d in result.detections["detections"] if d.label == "pedestrian"])
    assert len(found), "no pedestrian found on kitti101 000085"
    assert box_iou(people, found).max() >= 0.5


def test_the_quality_report_reproduces_the_cards_kitti_numbers(shared_assets, tmp_path) -> None:
    """bench/quality.py, run as a user would (after the importer), gives the card's kitti101 val numbers."""
    import json
    import subprocess
    import sys

    from conftest import REPO

    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "hydranet_ros.tools.cli", "import", "kitti", str(shared_assets / "kitti101"),
                    "--split", "val", "-o", str(data / "kitti101_val.jsonl")], check=True, cwd=REPO,
                   capture_output=True)
    subprocess.run([sys.executable, "bench/quality.py", str(MODEL), "--data", str(data), "--only", "kitti",
                    "--out", str(tmp_path / "out")], check=True, cwd=REPO, capture_output=True)
    got = json.loads((tmp_path / "out" / "quality.json").read_text())["kitti101_val"]
    card = yaml.safe_load(card_path(MODEL).read_text())["metrics"]["quality"]["kitti101_val"]
    for band, r in card["depth"].items():
        assert got["depth"][band]["pixels"] == r["pixels"]
        assert got["depth"][band]["abs_rel"] == pytest.approx(r["abs_rel"], abs=2e-3)
        assert got["depth"][band]["delta1"] == pytest.approx(r["delta1"], abs=2e-3)
    for c, r in card["detection"]["classes"].items():
        assert got["detection"]["classes"][c]["objects"] == r["objects"]
        assert got["detection"]["classes"][c]["recall"] == pytest.approx(r["recall"], abs=1e-6)
    assert (tmp_path / "out" / "kitti101_val_sheet.png").stat().st_size > 100_000
