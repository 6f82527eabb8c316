"""Fused HydraNet pass vs the same tasks as separate single-head networks (same backbone), ONNX Runtime CPU.

    .venv/bin/python bench/fused_vs_separate.py [--spec config/models/hydranet_effl0_road.yaml] [--runs 20]

Prints a table and the ratio, writes bench/results/fused_vs_separate.json. Both sides are measured in one run,
interleaved, so machine noise hits both alike; compare ratios, not absolute times, across machines.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from hydranet_ros.core import cpu_threads
from hydranet_ros.model.export import export_onnx
from hydranet_ros.model.spec import ModelSpec, load_spec

REPO = Path(__file__).resolve().parents[1]


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    # The sessions run interleaved: threads spin-waiting after one session's run would steal the next one's cores
    # (core/cpu_threads.py).
    cpu_threads.configure(opts)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, default=REPO / "config" / "models" / "hydranet_effl0_road.yaml")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per model (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op threads (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fused_vs_separate.json")
    args = ap.parse_args()

    spec = load_spec(args.spec)
    tmp = Path(tempfile.mkdtemp(prefix="hydranet_bench_"))
    fused_path = export_onnx(spec, tmp / "fused.onnx")
    singles = {}
    for head in spec.heads:
        doc = spec.to_dict()
        doc["heads"] = [h for h in doc["heads"] if h["name"] == head.name]
        doc["name"] = f"{spec.name}-{head.name}-only"
        singles[head.name] = export_onnx(ModelSpec.from_dict(doc), tmp / f"{head.name}.onnx")

    fused = session(fused_path, args.threads)
    separate = {name: session(p, args.threads) for name, p in singles.items()}
    frame = np.random.default_rng(0).integers(0, 256, (1, spec.input_height, spec.input_width, 3), dtype=np.uint8)
    for s in [fused, *separate.values()]:
        for _ in range(3):  # warm-up: allocations, thread pools
            s.run(None, {"images": frame})

    fused_ms: list[float] = []
    separate_ms: dict[str, list[float]] = {n: [] for n in separate}
    for _ in tqdm(range(args.runs), desc="timing (fused, then each single-head network)"):
        t = time.perf_counter()
        fused.run(None, {"images": frame})
        fused_ms.append((time.perf_counter() - t) * 1e3)
        for name, s in separate.items():
            t = time.perf_counter()
            s.run(None, {"images": frame})
            separate_ms[name].append((time.perf_counter() - t) * 1e3)

    med = {n: statistics.median(v) for n, v in separate_ms.items()}
    fused_med = statistics.median(fused_ms)
    total = sum(med.values())
    print(f"\n{spec.name}, {spec.input_width}x{spec.input_height}, batch 1, ORT {ort.__version__} CPU, "
          f"{args.threads} threads, median of {args.runs}")
    print(f"{'model':<34}{'median ms':>10}")
    for n, v in med.items():
        print(f"{'separate: ' + n:<34}{v:>10.1f}")
    print(f"{'separate, all together':<34}{total:>10.1f}")
    print(f"{'fused (one pass, every head)':<34}{fused_med:>10.1f}")
    print(f"ratio separate / fused: {total / fused_med:.2f}x (target >= 2.5x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "spec": spec.name, "input": [spec.input_width, spec.input_height], "batch": 1, "runs": args.runs,
        "threads": args.threads, "onnxruntime": ort.__version__, "machine": platform.machine(),
        "processor": platform.processor(), "fused_ms": fused_ms, "separate_ms": separate_ms,
        "fused_median_ms": fused_med, "separate_median_ms": med, "separate_total_ms": total,
        "ratio": total / fused_med,
    }, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
