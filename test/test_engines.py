"""The runtime's model contract and engines: real ONNX Runtime sessions and real torch, on real frames."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

from conftest import SAMPLES
from hydranet_ros.core.contract import ModelError, card_path, default_model_path, write_card
from hydranet_ros.core.hashing import sha256_of
from hydranet_ros.model.spec import load_spec
from hydranet_ros.runtime import engines
from hydranet_ros.runtime.contract import load_contract
from hydranet_ros.runtime.engines import (
    OrtEngine,
    TorchEngine,
    engine_cache_key,
    load_engine,
    trt_cache_dir,
    trt_engine_ready,
)
from hydranet_ros.tools import build_engine

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "config" / "models" / "hydranet_effl0_road.yaml"
W, H = 320, 192
TASKS = ["drivable_area", "lane_lines", "depth", "detections"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> SimpleNamespace:
    """The default spec at 320x192: ImageNet backbone, random heads, saved as a checkpoint (with its card) and
    exported from that checkpoint to ONNX."""
    import torch
    from safetensors.torch import save_file

    from hydranet_ros.model.export import export_onnx
    from hydranet_ros.model.hydra import HydraNet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("engines")
    spec = load_spec(SPEC).with_input_size(f"{W}x{H}")
    net = HydraNet(spec).eval()  # the ImageNet backbone loads in ~0.1 s and gives realistic activations
    ckpt = folder / "hydranet.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, ckpt)
    write_card(ckpt, spec.to_dict(), {"note": "test"})
    onnx_path = export_onnx(spec, folder / "hydranet.onnx", weights=ckpt)
    return SimpleNamespace(onnx=onnx_path, ckpt=ckpt, folder=folder)


@pytest.fixture(scope="module")
def ort_cpu(model) -> OrtEngine:
    engine = load_engine(model.onnx, providers=("cpu",))
    assert isinstance(engine, OrtEngine)
    return engine


@pytest.fixture(scope="module")
def torch_cpu(model) -> TorchEngine:
    engine = load_engine(model.ckpt, device="cpu")
    assert isinstance(engine, TorchEngine)
    return engine


def frames() -> np.ndarray:
    paths = sorted(SAMPLES.glob("*.jpg"))
    assert len(paths) >= 2
    rgb = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths[:2]]
    return np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_AREA) for f in rgb])


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Worst differences between two engines' outputs, asserting the parity bounds."""
    assert list(a) == list(b) == TASKS
    for name in a:
        assert (a[name].dtype, a[name].shape) == (b[name].dtype, b[name].shape), name
    report = {}
    for name in ("drivable_area", "lane_lines"):
        report[name] = float(np.mean(a[name] != b[name]))  # argmax near-ties only
        assert report[name] < 1e-3, f"{name}: {report[name]:.4%} of pixels differ"
    report["depth_m"] = float(np.abs(a["depth"] - b["depth"]).max())
    assert report["depth_m"] < 1e-3
    da, db = a["detections"], b["detections"]
    report["scores"] = float(np.abs(np.sort(da[..., 4], axis=1) - np.sort(db[..., 4], axis=1)).max())
    assert report["scores"] < 1e-4
    # Near-equal scores may come out in another order, and a row tied with the K-th may be cut: match each row of
    # `a` (score > 0.05, clear of the K-th) to the closest row of `b` with the same class and score.
    worst, matched = 0.0, 0
    for ra, rb in zip(da, db, strict=True):
        kth = ra[-1, 4]
        for row in ra[(ra[:, 4] > 0.05) & (ra[:, 4] > kth + 1e-4)]:
            cand = rb[(rb[:, 5] == row[5]) & (np.abs(rb[:, 4] - row[4]) < 1e-4)]
            assert len(cand), f"no detection like {row} in the other engine"
            worst = max(worst, float(np.abs(cand[:, :4] - row[:4]).max(axis=1).min()))
            matched += 1
    report["boxes_px"], report["rows_matched"] = worst, matched
    assert worst < 1e-2, f"boxes differ by {worst:.4f} px"
    return report


# ---------------------------------------------------------------------------------------------------------------
# engines


def test_onnxruntime_and_torch_engines_agree_on_real_frames(ort_cpu, torch_cpu):
    batch = frames()
    got, ref = ort_cpu.run(batch), torch_cpu.run(batch)
    assert {k: v.dtype for k, v in got.items()} == {"drivable_area": np.uint8, "lane_lines": np.uint8,
                                                    "depth": np.float32, "detections": np.float32}
    assert got["depth"].shape == (2, H, W) and got["detections"].shape == (2, 100, 6)
    report = compare(ref, got)
    assert report["rows_matched"] > 0
    print("torch vs onnxruntime (CPU):", report)
    assert "CPUExecutionProvider" in ort_cpu.description and "torch" in torch_cpu.description


@pytest.mark.parametrize("which", ["ort", "torch"])
def test_a_batch_gives_what_separate_runs_give(which, ort_cpu, torch_cpu):
    engine = ort_cpu if which == "ort" else torch_cpu
    two = frames()
    batch = np.concatenate([two, two[:1, :, ::-1]])  # a third, mirrored frame
    together = engine.run(batch)
    for i in range(3):
        alone = engine.run(batch[i : i + 1])
        compare(alone, {k: v[i : i + 1] for k, v in together.items()})


def test_a_wrong_batch_is_refused_with_the_expected_shape(ort_cpu, torch_cpu):
    for engine in (ort_cpu, torch_cpu):
        for bad in (np.zeros((1, H, W, 3), np.float32), np.zeros((H, W, 3), np.uint8),
                    np.zeros((1, 384, 640, 3), np.uint8), np.zeros((1, H, W, 4), np.uint8),
                    np.zeros((0, H, W, 3), np.uint8), [[0]]):
            with pytest.raises(ValueError, match=rf"uint8 RGB images \[B, {H}, {W}, 3\]"):
                engine.run(bad)  # type: ignore[arg-type]


def test_warmup_and_close(model):
    engine = load_engine(model.onnx)
    engine.warmup(batch_sizes=(1, 2), runs=1)
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        engine.run(frames()[:1])
    with load_engine(model.ckpt, device="cpu") as t:
        t.warmup()
    t.close()


def test_the_cpu_engine_leaves_the_cpu_idle_after_a_run(model):
    # ONNX Runtime's default keeps its worker threads spinning after a run, on the cores the node's DDS threads
    # need (~28 ms of CPU per 100 ms after a pass on the 2-core machine). Idle is idle on any machine: the process
    # may use the CPU for little more than the sleep's own bookkeeping.
    import time

    engine = load_engine(model.onnx, threads=2)
    batch = frames()[:1]
    engine.warmup(batch_sizes=(1,), runs=1)
    idle_ms = []
    for _ in range(5):
        engine.run(batch)
        t = time.process_time()
        time.sleep(0.1)
        idle_ms.append((time.process_time() - t) * 1e3)
    engine.close()
    assert sorted(idle_ms)[2] < 5.0, idle_ms


def test_providers_fall_back_with_a_warning_for_each_missing_one(model):
    warnings: list[str] = []
    engine = load_engine(model.onnx, providers=("tensorrt", "cuda", "cpu"), warn=warnings.append)
    assert engine.description.endswith("CPUExecutionProvider")
    assert len(warnings) == 2
    assert warnings[0].startswith("tensorrt (TensorrtExecutionProvider) is not available in this onnxruntime build")
    assert warnings[1].startswith("cuda (CUDAExecutionProvider) is not available")
    assert "(available: " in warnings[0] and "CPUExecutionProvider" in warnings[0]


def test_no_usable_provider_is_a_model_error_and_an_unknown_one_a_value_error(model):
    with pytest.raises(ModelError, match=r"none of the requested execution providers \(tensorrt\)"):
        load_engine(model.onnx, providers=("tensorrt",), warn=lambda _: None)
    with pytest.raises(ValueError, match="unknown execution provider.*'rocm'.*valid: tensorrt, cuda, cpu"):
        load_engine(model.onnx, providers=("rocm", "cpu"))


def test_torch_fp16_on_cpu_warns_and_runs_fp32(model):
    warnings: list[str] = []
    engine = load_engine(model.ckpt, device="cpu", fp16=True, warn=warnings.append)
    assert warnings == ["fp16 needs CUDA; the torch engine runs in fp32 on the CPU"]
    assert engine.description.endswith("cpu fp32")


def test_the_onnx_path_needs_no_torch(model):
    code = ("import sys, numpy as np\n"
            "from hydranet_ros.runtime.engines import load_engine\n"
            f"e = load_engine({str(model.onnx)!r})\n"
            f"out = e.run(np.zeros((1, {H}, {W}, 3), np.uint8))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print(sorted(out))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted(TASKS))


# ---------------------------------------------------------------------------------------------------------------
# TensorRT: what can be checked without a GPU


def test_trt_engine_ready_needs_an_engine_file(tmp_path):
    assert not trt_engine_ready(tmp_path / "absent")
    assert not trt_engine_ready(tmp_path)
    (tmp_path / "timing.cache").write_bytes(b"x")
    assert not trt_engine_ready(tmp_path)
    (tmp_path / "TensorrtExecutionProvider_TRTKernel_graph_main_123_0_0_sm90.engine").write_bytes(b"x")
    assert trt_engine_ready(tmp_path)


def test_engine_cache_key_is_deterministic_distinct_and_a_safe_name():
    base = ("a" * 64, "NVIDIA H100 80GB HBM3", "10.3.0", "fp16")
    key = engine_cache_key(*base)
    assert key == engine_cache_key(*base)
    assert key == "nvidia-h100-80gb-hbm3_trt10.3.0_fp16_aaaaaaaaaaaaaaaa"
    for i, other in enumerate(("b" * 64, "NVIDIA H200", "10.4.0", "fp32")):
        changed = list(base)
        changed[i] = other
        assert engine_cache_key(*changed) != key, f"input {i} does not change the key"
    for gpu in ("NVIDIA H100 80GB HBM3", "Orin (nvgpu) / ../..", "Tesla T4\x00"):
        name = engine_cache_key("c" * 64, gpu, "8.6.1", "fp32")
        assert all(ch.isalnum() or ch in "._-" for ch in name) and not name.startswith(".") and "/" not in name
    with pytest.raises(ValueError, match="fp16 or fp32"):
        engine_cache_key("a" * 64, "gpu", "10", "int8")


def test_tensorrt_without_a_cached_engine_is_skipped_never_built(model, tmp_path, monkeypatch):
    # Pretend this onnxruntime has TensorRT: with an empty cache the provider must be skipped before any session.
    import onnxruntime

    available = ["TensorrtExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: available)
    warnings: list[str] = []
    engine = load_engine(model.onnx, providers=("tensorrt", "cpu"), engine_cache_dir=tmp_path, fp16=True,
                         warn=warnings.append)
    assert engine.description.endswith("CPUExecutionProvider")
    assert warnings[0].startswith("no TensorRT engine for this model/GPU/TensorRT/precision in ")
    assert f"`hydranet build-engine {model.onnx} --fp16`; using cpu" in warnings[0]
    assert "fp16 applies to TensorRT only" in warnings[1]
    assert list(tmp_path.iterdir()) == []  # nothing was created, let alone built


def test_tensorrt_options_with_a_cached_engine(model, tmp_path):
    contract = load_contract(model.onnx)
    cache = trt_cache_dir(contract, tmp_path, fp16=True)
    assert cache.parent == tmp_path and cache.name.endswith(f"_fp16_{contract.sha256[:16]}")
    cache.mkdir()
    (cache / "model.engine").write_bytes(b"x")
    fake_ort = SimpleNamespace(get_available_providers=lambda: list(engines.PROVIDERS.values()))
    engine = OrtEngine.__new__(OrtEngine)  # only the provider choice, which needs no GPU
    chosen = engine._providers(fake_ort, contract, ["tensorrt", "cuda", "cpu"], True, tmp_path, 4, False,
                               lambda m: pytest.fail(m))
    assert [p for p, _ in chosen] == list(engines.PROVIDERS.values())
    trt = chosen[0][1]
    assert trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is True
    assert trt["trt_engine_cache_path"] == str(cache) and trt["trt_timing_cache_enable"] is True
    assert trt["trt_profile_min_shapes"] == f"images:1x{H}x{W}x3"
    assert trt["trt_profile_max_shapes"] == f"images:4x{H}x{W}x3"
    assert chosen[1][1] == {"device_id": 0}
    # An engine recorded as built for another max batch would be rebuilt by ONNX Runtime: skipped instead.
    (cache / engines.BUILD_RECORD).write_text(yaml.safe_dump({"max_batch": 8}))
    warnings: list[str] = []
    chosen = engine._providers(fake_ort, contract, ["tensorrt", "cuda"], True, tmp_path, 4, False, warnings.append)
    assert [p for p, _ in chosen] == ["CUDAExecutionProvider"]
    assert warnings == [f"the TensorRT engine in {cache} was built for max batch 8, not 4; use max batch 8, or "
                        f"rebuild with `hydranet build-engine {model.onnx} --max-batch 4 --fp16`; using cuda"]


# ---------------------------------------------------------------------------------------------------------------
# the contract


def test_contract_of_an_export_and_of_its_checkpoint(model):
    c = load_contract(model.onnx)
    assert (c.name, c.input_width, c.input_height) == ("hydranet-effl0-road", W, H)
    assert c.canonical_fx == pytest.approx(554.256)
    assert [(t.name, t.type) for t in c.tasks] == [("drivable_area", "segmentation"), ("lane_lines", "segmentation"),
                                                   ("depth", "depth"), ("detections", "detection")]
    assert c.task("detections").classes == ("vehicle", "pedestrian", "cyclist")
    # The exported spec holds every option, defaults filled in (resolved once, in the spec).
    assert c.task("depth").options == load_spec(SPEC).head("depth").options
    assert c.task("depth").options["canonical_fx"] == 554.256 and c.task("depth").options["min_depth"] == 0.1
    assert [t.name for t in c.tasks_of_type("segmentation")] == ["drivable_area", "lane_lines"]
    assert c.outputs["depth"]["dtype"] == "float32" and c.outputs["detections"]["shape"] == ["batch", 100, 6]
    assert c.sha256 == sha256_of(model.onnx)
    with pytest.raises(KeyError, match="tasks: drivable_area, lane_lines, depth, detections"):
        c.task("sidewalk")
    ck = load_contract(model.ckpt)
    assert (ck.outputs, ck.tasks, ck.canonical_fx, ck.spec) == (c.outputs, c.tasks, c.canonical_fx, c.spec)
    assert card_path(model.ckpt).name == "hydranet.safetensors.yaml"  # never the ONNX card's name
    assert yaml.safe_load(card_path(model.ckpt).read_text())["note"] == "test"


def copy_model(model, dest: Path) -> Path:
    shutil.copy(model.onnx, dest / "m.onnx")
    shutil.copy(card_path(model.onnx), dest / "m.yaml")
    return dest / "m.onnx"


def set_card_sha(path: Path, sha: str) -> None:
    card = yaml.safe_load(card_path(path).read_text())
    card["sha256"] = sha
    card_path(path).write_text(yaml.safe_dump(card))


@pytest.mark.parametrize("damage", ["flip_header", "truncate"])
def test_a_corrupt_onnx_is_a_model_error(model, tmp_path, damage):
    path = copy_model(model, tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip_header":
        data[:64] = bytes(b ^ 0xFF for b in data[:64])
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    set_card_sha(path, sha256_of(path))  # so that the hash check passes and the parser meets the damage
    with pytest.raises(ModelError, match=r"m\.onnx is not a readable ONNX model .*corrupt or truncated"):
        load_contract(path)
    with pytest.raises(ModelError):
        load_engine(path)


def test_a_replaced_model_is_refused_naming_both_hashes(model, tmp_path):
    path = copy_model(model, tmp_path)
    set_card_sha(path, "0" * 64)
    with pytest.raises(ModelError) as err:
        load_contract(path)
    assert sha256_of(path) in str(err.value) and "0" * 64 in str(err.value)
    assert "corrupt or replaced" in str(err.value)
    assert load_contract(path, verify_sha256=False).sha256 == sha256_of(path)


def test_a_missing_card_or_model_is_a_model_error(model, tmp_path):
    path = copy_model(model, tmp_path)
    card_path(path).unlink()
    with pytest.raises(ModelError, match=r"no model card .*m\.yaml"):
        load_contract(path)
    with pytest.raises(ModelError, match=r"no model at .*nowhere\.onnx: export one with `hydranet export SPEC -o"):
        load_engine(tmp_path / "nowhere.onnx")


def test_a_checkpoint_card_without_spec_or_with_another_hash_is_refused(model, tmp_path):
    ckpt = tmp_path / "c.safetensors"
    shutil.copy(model.ckpt, ckpt)
    card_path(ckpt).write_text(yaml.safe_dump({"sha256": sha256_of(ckpt)}))
    with pytest.raises(ModelError, match="has no 'spec'"):
        load_contract(ckpt)
    write_card(ckpt, load_contract(model.ckpt).spec)
    ckpt.write_bytes(ckpt.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelError, match="corrupt or replaced"):
        load_engine(ckpt)


def test_default_model_path_names_the_default_model():
    path = default_model_path()
    assert path.name == "hydranet_effl0_road.onnx" and path.parent.name == "models"


# ---------------------------------------------------------------------------------------------------------------
# hydranet build-engine


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hydranet build-engine")
    build_engine.add_arguments(p)
    return p


def test_build_engine_help_says_why_engines_are_built_explicitly(capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hydranet build-engine")
    for needle in ("--fp16", "--cache-dir", "--max-batch", "minutes", "never"):
        assert needle in out


def test_build_engine_without_tensorrt_exits_2_with_one_clear_line(model, capsys, tmp_path):
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT")
    args = parser().parse_args([str(model.onnx), "--cache-dir", str(tmp_path)])
    assert build_engine.run(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("hydranet build-engine: this onnxruntime")
    assert "no TensorRT (TensorrtExecutionProvider); available: " in err and "CPUExecutionProvider" in err
    assert build_engine.run(parser().parse_args([str(tmp_path / "none.onnx")])) == 2
    assert "no model at" in capsys.readouterr().err

