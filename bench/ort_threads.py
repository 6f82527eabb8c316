"""How ONNX Runtime's CPU threads should wait: the shipped model under three session settings, each in its own
process (so no setting's threads disturb another's), the processes alternated over --rounds so that machine
noise hits every setting alike.

    .venv/bin/python bench/ort_threads.py [--model models/hydranet_effl0_road.onnx] [--runs 15] [--rounds 2]

Settings:
  default           ONNX Runtime's own: worker threads spin-wait between operators and for a while after a run
  no spinning       session.intra_op.allow_spinning = 0: workers sleep whenever they have nothing to do
  spin within runs  allow_spinning = 1 with session.force_spinning_stop = 1: spin between operators, stop at the
                    end of a run (what core/cpu_threads.py gives every session of the project)

Per setting: a pass one frame every --period s (the node at a camera's pace: idle between frames), passes back to
back, and the CPU time the process uses in the 100 ms after a run (what a spinning pool takes from the node's
other threads). Prints a table, writes bench/results/ort_threads.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hydranet_ros.core import cpu_threads

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "hydranet_ros" / "samples" / "project_video_0750.jpg"
SETTINGS = {
    "default": {},
    "no spinning": {"session.intra_op.allow_spinning": "0"},
    "spin within runs": cpu_threads.SESSION_CONFIG,
}


def child(model: str, entries: dict[str, str], runs: int, period: float) -> dict:
    """One setting, in this process: paced and back-to-back pass times, CPU after a run."""
    import cv2
    import onnxruntime as ort

    from hydranet_ros.runtime.contract import load_contract
    from hydranet_ros.runtime.preprocess import make_batch

    c = load_contract(model)
    rgb = cv2.cvtColor(cv2.imread(str(IMAGE)), cv2.COLOR_BGR2RGB)
    x, _ = make_batch([rgb], c.input_width, c.input_height)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in entries.items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    for _ in range(3):
        session.run(None, feed)
    paced, after = [], []
    for _ in range(runs):
        time.sleep(period)
        t = time.perf_counter()
        session.run(None, feed)
        paced.append((time.perf_counter() - t) * 1e3)
        cpu = time.process_time()
        time.sleep(0.1)
        after.append((time.process_time() - cpu) * 1e3)
    back_to_back = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feed)
        back_to_back.append((time.perf_counter() - t) * 1e3)
    return {"paced_ms": paced, "back_to_back_ms": back_to_back, "cpu_ms_in_100ms_after_a_run": after}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model .onnx (default: the shipped model)")
    ap.add_argument("--runs", type=int, default=15, help="timed passes per mode and process (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=2, help="processes per setting, alternated (default: %(default)s)")
    ap.add_argument("--period", type=float, default=1 / 3, help="seconds between paced passes (default: 1/3)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(str(args.model), json.loads(args.child), args.runs, args.period)))
        return 0
    from hydranet_ros.core.contract import default_model_path
    from hydranet_ros.core.progress import show_progress

    model = (args.model or default_model_path()).resolve()
    results: dict[str, dict[str, list[float]]] = {name: {} for name in SETTINGS}
    plan = [name for _ in range(args.rounds) for name in SETTINGS]
    for name in show_progress(plan, desc="processes", unit="process"):
        out = subprocess.run([sys.executable, __file__, "--model", str(model), "--runs", str(args.runs),
                              "--period", str(args.period), "--child", json.dumps(SETTINGS[name])],
                             check=True, capture_output=True, text=True).stdout
        for key, values in json.loads(out.strip().splitlines()[-1]).items():
            results[name].setdefault(key, []).extend(values)

    print(f"\n{model.name}, batch 1, ONNX Runtime CPU, default threads; medians over {args.rounds} process(es) x "
          f"{args.runs} passes")
    print(f"{'setting':<18} {'paced ms':>9} {'back to back ms':>16} {'CPU ms in 100 ms after a run':>29}")
    summary = {}
    for name, r in results.items():
        summary[name] = {k: statistics.median(v) for k, v in r.items()}
        s = summary[name]
        print(f"{name:<18} {s['paced_ms']:>9.1f} {s['back_to_back_ms']:>16.1f} "
              f"{s['cpu_ms_in_100ms_after_a_run']:>29.1f}")
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "ort_threads.json"
    import onnxruntime as ort

    path.write_text(json.dumps({"model": model.name, "onnxruntime": ort.__version__, "machine": platform.machine(),
                                "period_s": args.period, "settings": SETTINGS, "median": summary, "raw": results},
                               indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
