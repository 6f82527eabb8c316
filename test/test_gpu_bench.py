"""bench/gpu.py, the GPU figures' command, in its tiny mode on this machine's CPU: it runs the shipped weights
through the node's pipeline with the torch engine, prints its table and writes JSON with a row per variant and
batch, and rows that need CUDA say so instead of vanishing. (On a GPU the same command measures; here nothing is
timed against anything.)"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_the_gpu_bench_runs_in_tiny_mode_and_reports_every_row(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--tiny", "--device", "cpu",
                          "--variants", "fp32,bf16 channels-last,fp16 channels-last cuda-graphs", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    rows = {(r["variant"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {(v, b) for v in ("fp32", "bf16 channels-last", "fp16 channels-last cuda-graphs")
                         for b in (1, 2)}
    for (variant, batch), r in rows.items():
        if "cuda-graphs" in variant:
            assert r["status"] == "skipped: needs CUDA"
            continue
        assert r["status"] == "ok" and r["runs"] == 2, r
        assert r["ms_per_batch"] > 0 and abs(r["fps"] - batch * 1000 / r["ms_per_batch"]) < 1e-6
        assert r["infer_ms"] > 0 and r["preprocess_ms"] > 0 and r["postprocess_ms"] > 0
        assert r["ms_per_batch"] >= r["infer_ms"]  # the pipeline's time includes the pass
        assert r["extra"]["engine"].startswith("torch") and r["extra"]["engine"].split()[-1] in (
            "fp32", "channels-last")
    assert result["device"].startswith("cpu") and result["model"] == "hydranet_effl0_road.safetensors"
    assert "bf16 channels-last" in run.stdout and "vs fp32" in run.stdout


def test_an_unknown_variant_is_refused_with_the_known_ones():
    run = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--tiny", "--variants", "fp8"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "unknown variant" in run.stderr and "bf16 channels-last" in run.stderr


def test_bf16_channels_last_gives_the_fp32_masks_and_depth_on_a_real_frame():
    """The reduced-precision variant the bench times computes the same thing (on the CPU here; bf16 autocast
    and channels-last memory order are the same code on a GPU)."""
    import cv2
    import numpy as np

    from conftest import IMAGE
    from hydranet_ros.runtime.contract import load_contract
    from hydranet_ros.runtime.engines import TorchEngine
    from hydranet_ros.runtime.preprocess import make_batch

    contract = load_contract(REPO / "models" / "hydranet_effl0_road.safetensors")
    rgb = cv2.cvtColor(cv2.imread(IMAGE), cv2.COLOR_BGR2RGB)
    batch, _ = make_batch([rgb], contract.input_width, contract.input_height)
    fp32 = TorchEngine(contract, device="cpu").run(batch)
    half = TorchEngine(contract, precision="bf16", channels_last=True, device="cpu")
    assert half.description.endswith("bf16 channels-last")
    low = half.run(batch)
    for task in contract.tasks:
        names = [n for n in fp32 if n.startswith(task.name)]
        assert names, task.name
        for n in names:
            if task.type == "segmentation" and fp32[n].dtype.kind in "iu":
                assert np.mean(low[n] == fp32[n]) > 0.97, n
            elif task.type == "depth":
                rel = np.abs(low[n] - fp32[n]) / np.maximum(fp32[n], 1e-3)
                assert np.median(rel) < 0.03, n
