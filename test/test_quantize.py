"""`hydranet quantize`: the shipped model's int8 form, calibrated on the repo's real frames, through the real
command, ONNX Runtime and the node. What it must show: a model the runtime accepts by its card, int8 where it
should be and float where it must stay, outputs close to the float model's on a real frame, the change per task
recorded when asked, and mistakes refused with the reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import yaml

from conftest import IMAGE, RELIABLE, REPO, Collector, spin_until, start_node, start_rig, wait_for_publishers

HYDRANET = [str(Path(sys.executable).parent / "hydranet")]
MODEL = REPO / "models" / "hydranet_effl0_road.onnx"


def hydranet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(HYDRANET + list(args), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> Path:
    manifest = tmp_path_factory.mktemp("calib") / "frames.jsonl"
    out = hydranet("import", "frames", str(REPO / "hydranet_ros" / "samples"), "-o", str(manifest))
    assert out.returncode == 0, out.stderr
    return manifest


@pytest.fixture(scope="module")
def int8_model(calibration, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "road_int8.onnx"
    run = hydranet("quantize", str(MODEL), "--calibrate", str(calibration), "-o", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"wrote {out}" in run.stdout and "Traceback" not in run.stderr
    return out


def test_the_card_says_what_was_done_and_the_runtime_accepts_it(int8_model, calibration):
    from hydranet_ros.runtime.contract import load_contract

    card = yaml.safe_load(int8_model.with_suffix(".yaml").read_text())
    source = yaml.safe_load(MODEL.with_suffix(".yaml").read_text())
    assert card["precision"] == "int8" and card["spec"] == source["spec"]
    assert card["provenance"]["quantized_from"]["sha256"] == source["sha256"]
    q = card["quantization"]
    assert q["calibration"]["manifests"] == [str(calibration)] and q["calibration"]["frames"] == 2
    assert q["convolutions_int8"] > 50 and len(q["kept_float"]["head_outputs"]) == 6
    contract = load_contract(int8_model)  # checks the sha256 in the card
    assert contract.tasks == load_contract(MODEL).tasks
    assert int8_model.stat().st_size < MODEL.stat().st_size / 2


def test_int8_where_it_should_be_float_where_it_must_stay(int8_model):
    graph = onnx.load(str(int8_model)).graph
    producer = {o: n for n in graph.node for o in n.output}
    card = yaml.safe_load(int8_model.with_suffix(".yaml").read_text())
    outputs = set(card["quantization"]["kept_float"]["head_outputs"])

    def weight_is_int8(node) -> bool:
        w = producer.get(node.input[1])
        return w is not None and w.op_type == "DequantizeLinear"

    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert {n.name for n in convs if not weight_is_int8(n)} >= outputs
    assert not any(weight_is_int8(n) for n in convs if n.name in outputs)
    assert sum(weight_is_int8(n) for n in convs) == card["quantization"]["convolutions_int8"]
    # The detection decoding (peak picking, top-K, NMS) is exact: no quantize step inside it.
    assert not any(n.op_type == "QuantizeLinear" and "detections/" in n.name and "out/" not in n.name
                   and producer.get(n.input[0]) is not None and producer[n.input[0]].op_type == "TopK"
                   for n in graph.node)


def test_int8_outputs_stay_close_to_the_float_model_on_a_real_frame(int8_model):
    from hydranet_ros.runtime.engines import load_engine
    from hydranet_ros.runtime.preprocess import make_batch

    rgb = cv2.cvtColor(cv2.imread(IMAGE), cv2.COLOR_BGR2RGB)
    ref_engine, q_engine = load_engine(MODEL), load_engine(int8_model)
    batch, _ = make_batch([rgb], ref_engine.contract.input_width, ref_engine.contract.input_height)
    ref, got = ref_engine.run(batch), q_engine.run(batch)
    assert np.mean(got["drivable_area"] == ref["drivable_area"]) > 0.95
    assert np.mean(got["lane_lines"] == ref["lane_lines"]) > 0.97
    assert np.median(np.abs(got["depth"] - ref["depth"]) / ref["depth"]) < 0.05
    # The freeway frame's confident vehicles survive quantization.
    assert (got["detections"][0, :, 4] >= 0.35).sum() >= 1


def test_mistakes_are_refused_with_the_reason(calibration, tmp_path):
    same = hydranet("quantize", str(MODEL), "--calibrate", str(calibration), "--eval", str(calibration),
                    "-o", str(tmp_path / "x.onnx"))
    assert same.returncode == 2 and "calibration never saw" in same.stderr
    weights = hydranet("quantize", str(MODEL.with_suffix(".safetensors")), "--calibrate", str(calibration))
    assert weights.returncode == 2 and "not an .onnx model" in weights.stderr
    tampered = tmp_path / "tampered.onnx"
    tampered.write_bytes(MODEL.read_bytes()[:-16] + b"\0" * 16)
    tampered.with_suffix(".yaml").write_text(MODEL.with_suffix(".yaml").read_text())
    bad = hydranet("quantize", str(tampered), "--calibrate", str(calibration))
    assert bad.returncode == 2 and "sha256" in bad.stderr and "Traceback" not in bad.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    none = hydranet("quantize", str(MODEL), "--calibrate", str(empty), "-o", str(tmp_path / "y.onnx"))
    assert none.returncode == 2 and "no frames" in none.stderr


def test_eval_records_the_change_per_task_on_labelled_frames(shared_assets, calibration, tmp_path):
    from conftest import sim_sample
    from hydranet_ros.train.manifest import write_manifest

    labelled = tmp_path / "sim.jsonl"
    write_manifest(labelled, [sim_sample(shared_assets, f) for f in ("000120", "000240", "000360")])
    out = tmp_path / "road_int8.onnx"
    run = hydranet("quantize", str(MODEL), "--calibrate", str(calibration), "--eval", str(labelled), "-o", str(out),
                   "--no-progress")
    assert run.returncode == 0, run.stdout + run.stderr
    change = yaml.safe_load(out.with_suffix(".yaml").read_text())["metrics"]["int8_vs_float"]
    assert change["images"] == 3 and change["manifests"] == [str(labelled)]
    metrics = change["metrics"]
    assert {k.split("/")[0] for k in metrics} >= {"drivable_area", "depth"}, metrics
    for k, v in metrics.items():
        assert v["change"] == pytest.approx(v["int8"] - v["float"], abs=2e-4), k
    miou = [v for k, v in metrics.items() if k.startswith("drivable_area") and "iou" in k.lower()]
    assert miou and all(abs(v["change"]) < 0.05 for v in miou)
    assert "drivable_area" in run.stdout and "change" in run.stdout


def test_the_node_serves_the_int8_model(int8_model, ros, rclpy_node):
    from diagnostic_msgs.msg import DiagnosticArray
    from vision_msgs.msg import Detection2DArray

    start_node(ros, int8_model, {"front": {}}, "node_int8")
    got = Collector(rclpy_node)
    got.listen("/hydranet/front/detections", Detection2DArray, RELIABLE)
    got.listen("/diagnostics", DiagnosticArray, 10)
    wait_for_publishers(rclpy_node, "/hydranet/front/detections", timeout=60)
    start_rig(ros, "rig_int8", rate=3, count=0, wait_for=["/camera/front/image_raw"],
              streams=[{"topic": "/camera/front/image_raw", "image": IMAGE}])
    got.wait(["/hydranet/front/detections"], timeout=60)
    spin_until(rclpy_node, lambda: any("model" in e for e in got.engine()), 30, "the engine's status")
    engine = [e for e in got.engine() if "model" in e]
    assert engine[-1]["model"].endswith(int8_model.name)
