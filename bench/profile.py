"""Where the fused pass spends its time: ONNX Runtime's per-node profile of a model, grouped by network part.

    .venv/bin/python bench/profile.py [MODEL ...] [--runs 20] [--threads 2] [--out bench/results/profile.json]

Each model (default: the shipped one, and its int8 form if runs/int8/hydranet_effl0_road_int8.onnx exists) runs
on a real 1280x720 frame letterboxed as the node does, batch 1, CPU, spinning off (as the node's engine), after
3 warm-ups; the kernel time of every node over --runs runs is summed and grouped: the input normalisation, the
backbone by stage (EfficientNet-Lite0: stem, stages 1-7), the decoder, each head, the in-graph post-processing
(full-resolution upsampling of masks and depth, arg-max, box decoding, top-K and NMS), and the layout reorders ONNX
Runtime inserts for its blocked (NCHWc) convolutions. Prints one table (ms per pass, share) with the models side by
side, and writes JSON. Interleaved by model so that a noisy minute hits both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import onnxruntime as ort  # noqa: E402

from hydranet_ros.core import cpu_threads  # noqa: E402
from hydranet_ros.runtime.contract import load_contract  # noqa: E402
from hydranet_ros.runtime.preprocess import make_batch  # noqa: E402

DEFAULT = REPO / "models" / "hydranet_effl0_road.onnx"
INT8 = REPO / "runs" / "int8" / "hydranet_effl0_road_int8.onnx"
FRAME = REPO / "hydranet_ros" / "samples" / "project_video_0750.jpg"
# EfficientNet-Lite0's blocks by stage (stride 2, 4, 4, 8, 16, 16, 32, 32 as in the paper's table).
STAGES = {0: 1, 1: 2, 2: 2, 3: 3, 4: 3, 5: 4, 6: 4, 7: 4, 8: 5, 9: 5, 10: 5, 11: 6, 12: 6, 13: 6, 14: 6, 15: 7}
LAYOUT_OPS = {"ReorderInput", "ReorderOutput", "Transpose"}


def part(name: str, op: str) -> str:
    """The network part a profiled node belongs to, from its (possibly fused) name and operator."""
    if "/net/" in name:
        piece = name.split("/net/", 1)[1].split("/")[0]
        if piece.startswith("_blocks."):
            return f"backbone stage {STAGES[int(piece.split('.')[1])]}"
        if piece.startswith(("_conv_stem", "Clip", "Constant")):  # the stem's conv and its ReLU6
            return "backbone stem"
        if piece == "decoder":
            return "decoder (Light-Weight RefineNet)"
        return f"head {piece}"
    if op in LAYOUT_OPS:
        return "layout reorders (NCHWc)"
    if op == "Resize":
        return "post: upsampling to full resolution"
    if op == "ArgMax":
        return "post: masks (arg-max)"
    return "pre/post: normalise input, decode boxes, top-K, NMS"


def profile(model: Path, x, runs: int, threads: int, warmup: int = 3) -> Counter:
    """Kernel ms per pass of each network part over `runs` passes after `warmup` untimed ones."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    cpu_threads.configure(opts)  # as the node's engine
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    for _ in range(warmup + runs):
        session.run(None, {"images": x})
    profile_file = Path(session.end_profiling())
    events = json.loads(profile_file.read_text())
    profile_file.unlink()
    passes = sorted((e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"),
                    key=lambda e: e["ts"])
    timed_from = passes[warmup]["ts"]
    totals: Counter = Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= timed_from:
            totals[part(e["name"], e["args"].get("op_name", ""))] += e["dur"] / 1000.0 / runs
    return totals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path, help="ONNX models (default: the shipped one, and its int8 "
                    "form where runs/int8 has it)")
    ap.add_argument("--runs", type=int, default=20, help="profiled passes per model (default %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (default %(default)s)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "profile.json")
    args = ap.parse_args()
    models = args.models or [m for m in (DEFAULT, INT8) if m.is_file()]
    rgb = cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)
    results = {}
    for m in models:
        contract = load_contract(m)
        x = make_batch([rgb], contract.input_width, contract.input_height)[0]
        results[m.name] = profile(m, x, args.runs, args.threads)
    parts = sorted({p for r in results.values() for p in r}, key=lambda p: -max(r.get(p, 0) for r in results.values()))
    names = list(results)
    print(f"kernel time per pass (ms), batch 1, {args.threads} threads, {args.runs} passes, {FRAME.name} "
          f"letterboxed; ONNX Runtime {ort.__version__}")
    print(f"{'part':52s}" + "".join(f" {n[:26]:>26s}" for n in names))
    for p in parts:
        row = ""
        for n in names:
            total = sum(results[n].values())
            row += f" {results[n].get(p, 0.0):17.2f} ({100 * results[n].get(p, 0.0) / total:4.1f} %)"
        print(f"{p:52s}{row}")
    print(f"{'total':52s}" + "".join(f" {sum(results[n].values()):17.2f}         " for n in names))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(["bench/profile.py", *sys.argv[1:]]),
                                    "onnxruntime": ort.__version__, "threads": args.threads, "runs": args.runs,
                                    "ms_per_pass": {n: dict(r) for n, r in results.items()}}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
