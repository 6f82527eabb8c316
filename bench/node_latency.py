"""hydranet_node end to end: camera publish -> last output received in another process, beside the engine alone.

    .venv/bin/python bench/node_latency.py [--cameras 1,4] [--rate 30] [--paced-rate 3] [--seconds 20]

Each run has three processes in a fresh ROS domain (loopback discovery; each process its own Fast DDS profile):
the camera rig (test/procs/camera.py: N 1280x720 rgb8 best-effort streams, every stream of a tick stamped with
the tick's publish time), hydranet_node (live mode, max_age_ms 5000 so nothing is dropped as stale), and this
process, which subscribes reliably to every per-frame output of every camera (each head of the model's contract,
and a depth head's camera_info: five for the default model) and notes the wall-clock arrival of each.

  e2e        arrival of the last of a tick's outputs (5 x N for the default model) - the tick's stamp. Only
             complete ticks count (live mode skips frames that arrive while the engine is busy: by design,
             reported as drops). The first --warmup s of each run are discarded.
  engine     engine.run on one batch of a tick's N letterboxed 1280x720 frames (B = N, the node's design: one
             pass per tick), in this process right after the run, no node running, same model and threads; p50
             of --engine-runs. make_batch likewise. If the node's mean batch was below N (a tick's frames split
             over several passes) its typical batch is timed too, in the JSON, and a note says so.
  overhead   e2e p50 - engine p50, and as % of engine p50; also e2e p50 - the node's own median infer time,
             which is immune to the engine running slower in the node than alone (CPU shared with the rig).
             A paced row's engine runs at the same pace (one batch per camera period): idle between frames, the
             engine alone is slower than back to back, and that is not the node's overhead.
  path       means of where a frame's time outside the stages goes: camera -> node (stamp to DDS reception),
             queued (in the node outside its stages), node -> subscriber (publishing and transport out).
  stages     the node's own per-stage means from /diagnostics (decode, preprocess, infer, postprocess, publish),
             node batch its mean batch size, busy drops the frames it replaced unprocessed (live mode).

Two rows per camera count: at --rate, where frames wait in the inbox for the pass in progress (the e2e then
includes that wait), and "paced" at --paced-rate (lowered if a pass of N frames would not fit twice into one
period), where waiting is not a factor: its overhead is the pipeline's own (transport, decode, preprocess,
postprocess, publish). Target (issue 4): overhead <= 15 % of engine time at one camera, judged as e2e p50 - the
node's own median infer time (the engine alone, timed minutes later in this process, varies too much here).
Prints a markdown table and writes bench/results/node_latency_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image
from tqdm import tqdm
from vision_msgs.msg import Detection2DArray

from hydranet_ros.ros.dds import PROFILE_ENV, use_shm_profile
from hydranet_ros.runtime.engines import load_engine
from hydranet_ros.runtime.preprocess import make_batch

REPO = Path(__file__).resolve().parents[1]
RIG = REPO / "test" / "procs" / "camera.py"
IMAGE = REPO / "hydranet_ros" / "samples" / "project_video_0750.jpg"  # 1280x720
NODE = Path(sys.executable).parent / "hydranet_node"


def frame_outputs(model: Path) -> dict[str, type]:
    """The per-frame outputs of a camera for `model`, from its contract (each head's topic, a depth head's
    camera_info) with their message types: the ones every frame must reach for an end-to-end time."""
    from hydranet_ros.runtime.contract import load_contract

    kinds = {"segmentation": Image, "depth": Image, "detection": Detection2DArray}
    outputs = {}
    for t in load_contract(model).tasks:
        outputs[t.name] = kinds[t.type]
        if t.type == "depth":
            outputs[f"{t.name}/camera_info"] = CameraInfo
    return outputs

STAGES = ("decode", "preprocess", "infer", "postprocess", "publish")
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
TARGET = 0.15
USER_PROFILE = os.environ.get(PROFILE_ENV)  # a Fast DDS profile chosen before this script ran, if any


def default_model() -> Path:
    """The shipped model, else the default spec with untrained heads, exported once (the demo's cache)."""
    from hydranet_ros.core.contract import default_model_path

    if default_model_path().is_file():
        return default_model_path()
    out = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hydranet_ros/untrained"
    out = out / "hydranet_effl0_road_untrained.onnx"
    if not out.is_file():
        from hydranet_ros.model.export import export_onnx
        from hydranet_ros.model.spec import load_spec

        print(f"exporting the default spec (untrained heads; same graph and cost) to {out} ...", flush=True)
        export_onnx(load_spec(REPO / "config/models/hydranet_effl0_road.yaml"), out)
    return out


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and its peak so far (VmHWM), MB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024.0
    return fields


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGINT (a clean rclpy shutdown), then SIGKILL. The exit code (-9: killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def spin(executor: SingleThreadedExecutor, until, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        for name, p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited ({p.returncode}) while waiting for {what}; see its log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


def wmean(pairs: list[tuple[float, float]]) -> float:
    """Mean of (value, weight) pairs; nan when there are none or no weight."""
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total > 0 else float("nan")


def node_run(args, cams: list[str], rate: float, log_dir: Path, tag: str) -> dict:
    """One run: rig + node as processes, this process measuring. Raw numbers, no engine comparison yet."""
    outputs = frame_outputs(args.model)
    domain = random.randint(1, 200)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"}
    if USER_PROFILE is None:  # each child picks its own (the node's differs from the rig's), not this process's
        env.pop(PROFILE_ENV, None)
    context = Context()
    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("node_latency_bench", context=context)
    arrivals: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)  # stamp ns -> (camera, output) -> ns
    diags: list[tuple[int, dict[str, dict[str, str]]]] = []

    def on_output(msg, key: tuple[str, str]) -> None:
        t = time.time_ns()
        arrivals[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec].setdefault(key, t)

    for c in cams:
        for o, msg_type in outputs.items():
            node.create_subscription(msg_type, f"/hydranet/{c}/{o}", lambda m, k=(c, o): on_output(m, k), RELIABLE)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda a: diags.append(
        (time.time_ns(), {s.name: {kv.key: kv.value for kv in s.values} for s in a.status})), 50)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    procs: list[tuple[str, subprocess.Popen]] = []
    logs = []

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        logs.append(open(log_dir / f"{tag}.{name}.log", "wb"))  # noqa: SIM115 - closed in finally
        procs.append((name, subprocess.Popen(argv, env=env, stdout=logs[-1], stderr=subprocess.STDOUT)))
        return procs[-1][1]

    try:
        params = {"model": str(args.model), "mode": "live", "max_age_ms": 5000, "threads": args.threads,
                  "camera_names": cams, "max_batch": args.max_batch}
        for c in cams:
            params.update({f"cameras.{c}.image_topic": f"/camera/{c}/image_raw",
                           f"cameras.{c}.camera_info_topic": "", f"cameras.{c}.fallback_fx": 1000.0})
        ros_args = [a for k, v in params.items() for a in ("-p", f"{k}:={json.dumps(v)}")]
        node_proc = start("node", [str(NODE), "--ros-args", *ros_args])
        spin(executor, lambda: all(node.count_publishers(f"/hydranet/{c}/{o}") for c in cams for o in outputs),
             120, "the node's outputs (model load + warm-up)", procs)
        idle_rss = memory_mb(node_proc.pid)["VmRSS"]  # model loaded and warmed up, no frame yet
        streams = [{"topic": f"/camera/{c}/image_raw", "image": str(IMAGE), "qos": "best_effort",
                    "frame_id": f"camera_{c}"} for c in cams]
        plan = {"rate": rate, "count": 0, "wait_for": [s["topic"] for s in streams], "streams": streams}
        start("rig", [sys.executable, str(RIG), json.dumps(plan)])
        spin(executor, lambda: bool(arrivals), 60, "the first output", procs)
        t0 = min(arrivals)  # stamp of the first frame processed, ~ the rig's first tick
        t_from, t_to = t0 + int(args.warmup * 1e9), t0 + int((args.warmup + args.seconds) * 1e9)
        rss: list[float] = []  # the node's resident memory, sampled every 0.5 s in the measured window

        def window_over() -> bool:
            now = time.time_ns()
            if t_from <= now < t_to and (not rss or now - rss_at[0] >= 5e8):
                rss.append(memory_mb(node_proc.pid)["VmRSS"])
                rss_at[0] = now
            return now >= t_to

        rss_at = [0]
        spin(executor, window_over, args.warmup + args.seconds + 30, "the run's end", procs)
        peak_rss = memory_mb(node_proc.pid)["VmHWM"]
        stop(procs[1][1])
        count = -1  # drain: the outputs of frames still in flight
        while count != sum(map(len, arrivals.values())) and time.time_ns() < t_to + 15e9:
            count = sum(map(len, arrivals.values()))
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
    finally:
        exit_codes = {name: stop(p) for name, p in reversed(procs)}
        for f in logs:
            f.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)

    need = len(cams) * len(outputs)
    window = {s: a for s, a in arrivals.items() if t_from <= s < t_to}
    e2e = sorted((max(a.values()) - s) / 1e6 for s, a in window.items() if len(a) == need)
    frames = sorted((max(t for (c2, _), t in a.items() if c2 == c) - s) / 1e6 for s, a in window.items()
                    for c in cams if sum(c2 == c for c2, _ in a) == len(outputs))
    # /diagnostics of the window: the first report is the baseline for totals, the later ones are its periods.
    seen = [d for t, d in diags if t_from <= t <= t_to + 1e9]
    t_seen = [t for t, _ in diags if t_from <= t <= t_to + 1e9]
    periods = [d[f"hydranet: camera {c}"] for d in seen[1:] for c in cams]

    def period_mean(key: str) -> float:  # a /diagnostics value over the periods, weighted by output rate
        return wmean([(float(v[key]), float(v["output_rate_hz"])) for v in periods
                      if v.get(key, "n/a") != "n/a" and float(v["output_rate_hz"]) > 0])

    stages = {s: period_mean(f"latency_{s}_ms") for s in STAGES}
    # The infer stage's median too: a few slow passes lift the mean, and e2e is a median.
    infer_p50 = period_mean("latency_infer_ms_p50")
    # The node's own: from DDS reception, and from the header stamp, to the hand-over to DDS.
    ages = {key: period_mean(key) for key in ("age_at_publish_ms", "stamp_age_at_publish_ms")}
    eng = [d["hydranet: engine"] for d in seen]
    pb = [(float(b["mean_batch_size"]), int(b["passes_total"]) - int(a["passes_total"]))
          for a, b in zip(eng, eng[1:], strict=False) if b["mean_batch_size"] != "n/a"]
    mean_batch = wmean(pb)

    def total(key: str) -> int:  # over the window, all cameras
        return sum(int(seen[-1][f"hydranet: camera {c}"][key]) - int(seen[0][f"hydranet: camera {c}"][key])
                   for c in cams) if len(seen) > 1 else 0

    passes = (int(eng[-1]["passes_total"]) - int(eng[0]["passes_total"])) if len(eng) > 1 else 0
    span_s = (t_seen[-1] - t_seen[0]) / 1e9 if len(t_seen) > 1 else float("nan")
    return {"cameras": len(cams), "rate_hz": rate, "seconds": args.seconds,
            "node_rss_idle_mb": idle_rss, "node_rss_mb": float(np.median(rss)) if rss else float("nan"),
            "node_rss_peak_mb": peak_rss, "passes_per_s": passes / span_s if passes else 0.0,
            "offered_ticks": round(rate * args.seconds), "complete_ticks": len(e2e),
            "partial_ticks": len(window) - len(e2e), "results_per_s": len(e2e) / args.seconds,
            "e2e_ms": e2e, "frame_e2e_ms": frames, "stage_means_ms": stages, "infer_p50_ms": infer_p50, "ages_ms": ages,
            "mean_batch": mean_batch,
            "max_batch": max((int(e["max_batch_size"]) for e in eng if e["max_batch_size"] != "n/a"), default=0),
            **{k: total(f"{k}_total") for k in ("received", "published", "dropped_busy", "dropped_stale")},
            "exit_codes": exit_codes}


def time_engine(engine, runs: int, batch_size: int, period_s: float = 0.0) -> dict:
    """engine.run and make_batch on B copies of the 1280x720 sample (letterboxed), p50 of `runs`; one run every
    `period_s` where given (the node's pace: an engine idle between frames runs slower than back to back)."""
    rgb = cv2.cvtColor(cv2.imread(str(IMAGE)), cv2.COLOR_BGR2RGB)
    c = engine.contract
    engine.warmup(batch_sizes=(batch_size,))
    run_ms, pre_ms = [], []
    next_run = time.monotonic()
    for _ in range(runs):
        time.sleep(max(0.0, next_run - time.monotonic()))
        next_run = time.monotonic() + period_s
        t = time.perf_counter()
        batch, _ = make_batch([rgb] * batch_size, c.input_width, c.input_height)
        pre_ms.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        engine.run(batch)
        run_ms.append((time.perf_counter() - t) * 1e3)
    return {"batch": batch_size, "period_s": period_s, "engine_p50_ms": float(np.median(run_ms)),
            "make_batch_p50_ms": float(np.median(pre_ms)), "engine_ms": run_ms, "make_batch_ms": pre_ms}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def path_ms(r: dict) -> tuple[float, float, float]:
    """Means along a frame's way: camera -> the node's DDS reader (the tick's stamp to reception), waiting in the
    node outside its stages (reception to the hand-over to DDS, less decode, preprocess, infer, postprocess), and
    the node -> this subscriber (the hand-over to the last output's arrival, publishing included)."""
    st, ages = r["stage_means_ms"], r["ages_ms"]
    staged = sum(st[s] for s in ("decode", "preprocess", "infer", "postprocess"))
    return (ages["stamp_age_at_publish_ms"] - ages["age_at_publish_ms"], ages["age_at_publish_ms"] - staged,
            float(np.mean(r["e2e_ms"])) - ages["stamp_age_at_publish_ms"] if r["e2e_ms"] else float("nan"))


def row(r: dict) -> str:
    e2e, eng = pct(r["e2e_ms"], 50), r["engine"]["engine_p50_ms"]
    st = r["stage_means_ms"]
    rate = f"{r['rate_hz']:g}" + (" paced" if r["kind"] == "paced" else "")
    return (f"| {r['cameras']} | {rate} | {r['results_per_s']:.2f} | {e2e:.0f} | {pct(r['e2e_ms'], 95):.0f} | "
            f"{r['mean_batch']:.2f} | {eng:.0f} (B={r['engine']['batch']}) | {r['engine']['make_batch_p50_ms']:.1f} | "
            f"{e2e - eng:.0f} | {100 * (e2e - eng) / eng:.0f} % | {r['infer_p50_ms']:.0f} | "
            f"{e2e - r['infer_p50_ms']:.0f} | "
            + " | ".join(f"{v:.1f}" for v in path_ms(r)) + " | "
            + " | ".join(f"{st[s]:.1f}" for s in STAGES)
            + f" | {r['dropped_busy']} | {r['complete_ticks']} / {r['offered_ticks']} | {r['passes_per_s']:.2f} | "
            f"{r['node_rss_idle_mb']:.0f} | {r['node_rss_mb']:.0f} | {r['node_rss_peak_mb']:.0f} |")


HEADER = ("| cameras | rate Hz | results/s | e2e p50 ms | e2e p95 ms | node batch | engine p50 ms | make_batch ms | "
          "overhead p50 ms | overhead % | node infer p50 ms | e2e - node infer ms | camera -> node | queued | "
          "node -> subscriber | "
          "decode | preprocess | infer | postprocess | publish | "
          "busy drops | complete / offered ticks | passes/s | node RSS idle MB | node RSS MB | node peak MB |\n|"
          + "---|" * 26)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", default="1,4", help="camera counts, comma-separated (default: %(default)s)")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz (default: %(default)s)")
    ap.add_argument("--paced-rate", type=float, default=3.0, help="rate of the paced rows, Hz; lowered to half "
                    "the engine's rate for a batch of N frames where needed (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (default: %(default)s)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds discarded first (default: %(default)s)")
    ap.add_argument("--model", type=Path, help="model .onnx (card beside it); default: the shipped model, else "
                    "the default spec with untrained heads, exported once to ~/.cache/hydranet_ros/untrained")
    ap.add_argument("--threads", type=int, default=0, help="inference threads, node and engine-only "
                    "(0: the engine's default; default: %(default)s)")
    ap.add_argument("--max-batch", type=int, default=0, help="the node's max_batch (0: every camera's frame in "
                    "one pass; default: %(default)s)")
    ap.add_argument("--engine-runs", type=int, default=20, help="engine-only timed runs (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="folder for the JSON")
    args = ap.parse_args()
    counts = [int(n) for n in args.cameras.split(",")]
    args.model = (args.model or default_model()).resolve()

    log_dir = Path(tempfile.mkdtemp(prefix="hydranet_node_latency_"))
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(log_dir))
    os.environ.pop("ROS_STATIC_PEERS", None)
    use_shm_profile()  # before any rclpy.init
    try:
        return measure(args, counts, log_dir, load_engine(args.model, providers=("cpu",), threads=args.threads))
    except KeyboardInterrupt:
        print(f"\ninterrupted; child processes stopped; their logs are in {log_dir}", file=sys.stderr)
        return 130


def measure(args: argparse.Namespace, counts: list[int], log_dir: Path, engine) -> int:
    runs, timed = [], []
    plan = [(n, kind) for n in counts for kind in ("paced", "rate")]
    with tqdm(plan, desc="runs", unit="run") as bar:
        for n, kind in bar:
            rate = args.rate
            if kind == "paced":  # a quick estimate of a pass of n frames, to keep the paced rate sustainable
                fits = 1000.0 / (2 * time_engine(engine, 3, n)["engine_p50_ms"])
                rate = args.paced_rate if args.paced_rate <= fits else max(0.1, int(fits * 10) / 10)
            bar.set_postfix_str(f"{n} camera(s) at {rate:g} Hz")
            r = node_run(args, [f"cam{i}" for i in range(n)], rate, log_dir, f"{n}cam_{kind}")
            bar.set_postfix_str(f"engine alone, batch {n}")
            # Right after the run, no node running, at the run's pace: paced, one batch per camera period.
            timed.append(time_engine(engine, args.engine_runs, n, 1.0 / rate if kind == "paced" else 0.0))
            typical = n if np.isnan(r["mean_batch"]) else max(1, min(n, round(r["mean_batch"])))
            if typical != n:  # the node split ticks over several passes: time its typical batch too (JSON)
                r["engine_typical_batch"] = time_engine(engine, args.engine_runs, typical)
            runs.append({**r, "kind": kind, "engine": timed[-1]})

    c = engine.contract
    print(f"\n{c.name}, {c.input_width}x{c.input_height}, {engine.description}, threads {args.threads}, "
          f"node max_batch {args.max_batch}; "
          f"{args.seconds:g} s per run after {args.warmup:g} s warm-up; stage columns: the node's means, ms")
    print(HEADER)
    for r in runs:
        print(row(r))
    for r in runs:
        if r["cameras"] == 1:
            # Judged against the engine as it runs in the node: the engine alone, timed in another process
            # minutes later, varies by +-10 ms from run to run on a 2-core machine (bench/README.md).
            e2e, eng, infer = pct(r["e2e_ms"], 50), r["engine"]["engine_p50_ms"], r["infer_p50_ms"]
            share = (e2e - infer) / infer
            verdict = "meets" if share <= TARGET else "misses"
            print(f"1 camera at {r['rate_hz']:g} Hz{' (paced)' if r['kind'] == 'paced' else ''}: the node's own "
                  f"cost {e2e - infer:.1f} ms = {100 * share:.0f} % of its engine's {infer:.1f} ms (p50): {verdict} "
                  f"the target (<= {100 * TARGET:.0f} %); against the engine alone ({eng:.1f} ms): "
                  f"{e2e - eng:.1f} ms = {100 * (e2e - eng) / eng:.0f} %")
    one = [r for r in runs if r["cameras"] == 1 and r["kind"] == "rate"]
    for r in runs:
        if one and r["cameras"] > 1 and r["kind"] == "rate":
            ratio = r["node_rss_peak_mb"] / one[0]["node_rss_peak_mb"]
            print(f"memory: {r['cameras']} cameras at {r['rate_hz']:g} Hz peak at {r['node_rss_peak_mb']:.0f} MB = "
                  f"{ratio:.2f}x one camera's {one[0]['node_rss_peak_mb']:.0f} MB"
                  + (" (target for 4 cameras: <= 1.5x)" if r["cameras"] == 4 else ""))
    for r in runs:
        if r["mean_batch"] < r["cameras"] - 0.05:
            t = r.get("engine_typical_batch")
            also = f"; engine alone at batch {t['batch']}: {t['engine_p50_ms']:.0f} ms" if t else ""
            print(f"note: {r['cameras']} cameras at {r['rate_hz']:g} Hz: mean batch {r['mean_batch']:.2f}, not "
                  f"{r['cameras']}: a tick's frames were split over several passes, so a tick cost more than the "
                  f"engine column's one pass{also}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"node_latency_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.write_text(json.dumps({
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": c.name, "model_sha256": c.sha256, "input": [c.input_width, c.input_height],
        "engine": engine.description, "machine": platform.machine(), "processor": platform.processor(),
        "cpus": os.cpu_count(), "engine_only": timed, "runs": runs, "logs": str(log_dir),
    }, indent=1))
    print(f"wrote {out}; process logs in {log_dir}")
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
