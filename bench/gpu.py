"""The default model on a GPU through the project's torch engine: fp32, fp16, bf16, channels-last, CUDA graphs and
torch.compile, at batch 1, 4 and 8 of real 1280x720 frames, letterbox and post-processing included.

    python bench/gpu.py                       # on a machine with an NVIDIA GPU: the full table, < 5 min
    python bench/gpu.py --tiny                # anywhere (the CPU included): 2 batch sizes, 2 variants, a few runs
    python bench/gpu.py --help

Needs only torch, numpy, opencv, pyyaml and safetensors (no ROS, no ONNX Runtime, no TensorRT): run it from the
repository root, or anywhere with the repository on PYTHONPATH. Each row is one variant at one batch size: the
frames go through the node's pipeline (hydranet_ros.runtime.pipeline.Perception: decode, letterbox into one
batch, one pass, post-processing into each frame's geometry) with the variant's engine; the times are the median
over the timed runs after warm-up, per batch, with frames/s = batch / median. GPU memory is the peak torch
allocated during that row. A variant that fails (a CUDA graph that cannot capture, a compile error) gets a row
saying why, and the rest go on. Rows run fastest-to-set-up first, and once --budget-s is spent the remaining ones
are listed as skipped, so the command always finishes in time. Prints a table and writes JSON
(bench/results/gpu.json by default).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the device machine has the repository, not an installed package

import cv2  # noqa: E402

from hydranet_ros.core.geometry import Calibration  # noqa: E402
from hydranet_ros.runtime.contract import load_contract  # noqa: E402
from hydranet_ros.runtime.engines import TorchEngine  # noqa: E402
from hydranet_ros.runtime.pipeline import Perception  # noqa: E402

MODEL = REPO / "models" / "hydranet_effl0_road.safetensors"
FRAMES = sorted((REPO / "hydranet_ros" / "samples").glob("project_video_*.jpg"))  # real 1280x720 Udacity frames
SCORE_THRESHOLD = 0.35  # the node's default


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str = "fp32"
    channels_last: bool = False
    cuda_graphs: bool = False
    compile_mode: str = ""
    cuda_only: bool = False


VARIANTS = [
    Variant("fp32"),
    Variant("fp16", "fp16", cuda_only=True),
    Variant("bf16", "bf16"),
    Variant("fp16 channels-last", "fp16", channels_last=True, cuda_only=True),
    Variant("bf16 channels-last", "bf16", channels_last=True),
    Variant("fp16 channels-last cuda-graphs", "fp16", channels_last=True, cuda_graphs=True, cuda_only=True),
    Variant("bf16 channels-last cuda-graphs", "bf16", channels_last=True, cuda_graphs=True, cuda_only=True),
    Variant("fp16 channels-last compile", "fp16", channels_last=True, compile_mode="max-autotune-no-cudagraphs",
            cuda_only=True),
]
TINY_VARIANTS = ["fp32", "bf16 channels-last"]


@dataclass
class Row:
    variant: str
    batch: int
    status: str = "ok"  # ok | failed: ... | skipped: ...
    ms_per_batch: float = 0.0
    fps: float = 0.0
    preprocess_ms: float = 0.0
    infer_ms: float = 0.0
    postprocess_ms: float = 0.0  # per batch
    gpu_mem_mb: float | None = None
    first_pass_s: float = 0.0  # engine set-up + the first pass (capture, compile)
    runs: int = 0
    extra: dict = field(default_factory=dict)


def camera_messages(batch: int) -> list[SimpleNamespace]:
    """`batch` rgb8 frames as a camera driver publishes them (sensor_msgs/Image fields; no ROS needed)."""
    out = []
    for i in range(batch):
        rgb = cv2.cvtColor(cv2.imread(str(FRAMES[i % len(FRAMES)])), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        out.append(SimpleNamespace(encoding="rgb8", height=h, width=w, step=3 * w, is_bigendian=0,
                                   data=rgb.tobytes()))
    return out


def measure(variant: Variant, batch: int, args: argparse.Namespace, device: str) -> Row:
    import torch

    row = Row(variant.name, batch)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.monotonic()
    engine = TorchEngine(load_contract(args.model), precision=variant.precision, channels_last=variant.channels_last,
                         cuda_graphs=variant.cuda_graphs, compile_mode=variant.compile_mode, device=device)
    try:
        perception = Perception(engine, engine.contract)
        messages = camera_messages(batch)
        calibrations = [Calibration() for _ in messages]
        for i in range(args.warmup):
            perception.process(messages, calibrations, SCORE_THRESHOLD)
            if i == 0:
                row.first_pass_s = time.monotonic() - t0
        times, stages = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            p = perception.process(messages, calibrations, SCORE_THRESHOLD)
            times.append((time.perf_counter() - t) * 1000.0)
            stages.append((p.preprocess_ms, p.infer_ms, p.postprocess_ms * p.batch_size))
            assert p.batch_size == batch and all(f.result is not None for f in p.frames)
        row.runs = len(times)
        row.ms_per_batch = statistics.median(times)
        row.fps = batch / row.ms_per_batch * 1000.0
        row.preprocess_ms, row.infer_ms, row.postprocess_ms = (statistics.median(s) for s in zip(*stages, strict=True))
        if cuda:
            row.gpu_mem_mb = torch.cuda.max_memory_allocated() / 2**20
        row.extra["engine"] = engine.description
    finally:
        engine.close()
    return row


def table(rows: list[Row], baseline: str) -> str:
    base = {r.batch: r.ms_per_batch for r in rows if r.variant == baseline and r.status == "ok"}
    lines = [f"{'variant':34s} {'batch':>5s} {'ms/batch':>9s} {'frames/s':>9s} {'vs ' + baseline:>9s} "
             f"{'prep ms':>8s} {'infer ms':>9s} {'post ms':>8s} {'GPU MB':>7s} {'1st pass s':>10s}"]
    for r in rows:
        if r.status != "ok":
            lines.append(f"{r.variant:34s} {r.batch:5d}   {r.status}")
            continue
        ratio = f"{base[r.batch] / r.ms_per_batch:.2f}x" if r.batch in base else "-"
        mem = f"{r.gpu_mem_mb:.0f}" if r.gpu_mem_mb is not None else "-"
        lines.append(f"{r.variant:34s} {r.batch:5d} {r.ms_per_batch:9.2f} {r.fps:9.1f} {ratio:>9s} "
                     f"{r.preprocess_ms:8.2f} {r.infer_ms:9.2f} {r.postprocess_ms:8.2f} {mem:>7s} "
                     f"{r.first_pass_s:10.1f}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=MODEL, help="a .safetensors checkpoint with its card "
                    "(default: the shipped model's weights)")
    ap.add_argument("--device", default="auto", help="auto (cuda if torch sees a GPU), cuda[:N] or cpu")
    ap.add_argument("--batches", default="1,4,8", help="batch sizes (default 1,4,8)")
    ap.add_argument("--variants", default="", help="comma-separated variant names (default: all that apply; "
                    f"known: {'; '.join(v.name for v in VARIANTS)})")
    ap.add_argument("--warmup", type=int, default=10, help="untimed passes per row (the first sets up graphs)")
    ap.add_argument("--runs", type=int, default=50, help="timed passes per row")
    ap.add_argument("--budget-s", type=float, default=270.0, help="stop starting rows after this long (default "
                    "270: the command ends within 5 minutes)")
    ap.add_argument("--tiny", action="store_true", help="a quick check that runs anywhere: batch 1 and 2, "
                    f"{' and '.join(TINY_VARIANTS)}, 1 warm-up and 2 timed passes")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu.json")
    args = ap.parse_args()

    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if args.tiny:
        args.batches, args.warmup, args.runs = "1,2", 1, 2
        args.variants = args.variants or ",".join(TINY_VARIANTS)
    batches = [int(b) for b in args.batches.split(",")]
    wanted = [v for v in VARIANTS if not args.variants or v.name in args.variants.split(",")]
    unknown = set(args.variants.split(",")) - {v.name for v in VARIANTS} - {""}
    if unknown:
        ap.error(f"unknown variant(s) {sorted(unknown)}; known: {[v.name for v in VARIANTS]}")
    gpu = torch.cuda.get_device_name(device) if device.startswith("cuda") else None
    print(f"bench/gpu.py: {args.model.name} on {gpu or 'CPU (' + platform.processor() + ')'}, torch "
          f"{torch.__version__}, {len(FRAMES)} real 1280x720 frames, batches {batches}", flush=True)

    start, rows = time.monotonic(), []
    for variant in wanted:
        for batch in batches:
            if variant.cuda_only and gpu is None:
                rows.append(Row(variant.name, batch, status="skipped: needs CUDA"))
            elif time.monotonic() - start > args.budget_s:
                rows.append(Row(variant.name, batch, status=f"skipped: the {args.budget_s:.0f} s budget is spent"))
            else:
                try:
                    rows.append(measure(variant, batch, args, device))
                except Exception as exc:  # noqa: BLE001 - one variant failing must not lose the others' rows
                    why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
                    rows.append(Row(variant.name, batch, status=f"failed: {why}"))
                    traceback.print_exc(limit=3)
            print(f"  {rows[-1].variant} batch {batch}: {rows[-1].status}"
                  + (f", {rows[-1].ms_per_batch:.2f} ms" if rows[-1].status == "ok" else ""), flush=True)

    print()
    print(table(rows, "fp32"))
    result = {
        "command": " ".join(["python", "bench/gpu.py", *sys.argv[1:]]),
        "device": gpu or f"cpu: {platform.processor()}", "torch": torch.__version__,
        "cuda": torch.version.cuda, "model": str(args.model.name), "frames": [f.name for f in FRAMES],
        "batches": batches, "warmup": args.warmup, "runs": args.runs,
        "elapsed_s": round(time.monotonic() - start, 1),
        "rows": [r.__dict__ for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out} ({result['elapsed_s']} s)")
    return 0 if any(r.status == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
