"""Soak: hydranet_node under a steady camera load for minutes; does memory or latency drift?

    .venv/bin/python bench/soak.py [--minutes 10] [--cameras 2] [--rate 15] [--mode live] [--size 1280x720]

A camera rig (test/procs/camera.py in its stock configuration: a camera driver as installed) publishes N
1280x720 streams (reliable, keep last 10: rclpy's default) into one hydranet_node running the shipped model (else
the default spec with untrained heads). This process samples the node's resident memory (/proc) every 2 s and
reads its /diagnostics: age at publish (reception to publication: what max_age_ms bounds), output rate, drops,
frames lost on the way. It subscribes to one output per camera to time results end to end (camera stamp to
arrival here).

Prints a table per minute and the trend over the run: RSS slope (MB per minute, least squares over the samples
after the first minute) and latency p50/p95 of the first and last minute. Writes bench/results/soak_<timestamp>.json.
Not a test: it takes minutes, and what it measures depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from node_latency import default_model, stop  # bench/ is on sys.path when a script of it runs
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from tqdm import tqdm
from vision_msgs.msg import Detection2DArray

from hydranet_ros.ros.dds import PROFILE_ENV, use_shm_profile

REPO = Path(__file__).resolve().parents[1]
RIG = REPO / "test" / "procs" / "camera.py"
IMAGE = REPO / "hydranet_ros" / "samples" / "project_video_0750.jpg"
NODE = Path(sys.executable).parent / "hydranet_node"
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="duration (default: %(default)s)")
    ap.add_argument("--cameras", type=int, default=2, help="camera count (default: %(default)s)")
    ap.add_argument("--rate", type=float, default=15.0, help="camera rate, Hz (default: %(default)s)")
    ap.add_argument("--size", default="1280x720", help="frame size (default: %(default)s)")
    ap.add_argument("--mode", choices=("live", "replay"), default="live", help="node mode (default: %(default)s)")
    ap.add_argument("--max-age-ms", type=int, default=1000, help="the node's max_age_ms (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="folder for the JSON")
    args = ap.parse_args()
    size = [int(v) for v in args.size.split("x")]
    log_dir = Path(tempfile.mkdtemp(prefix="hydranet_soak_"))
    domain = random.randint(1, 200)
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(log_dir))
    os.environ.pop("ROS_STATIC_PEERS", None)
    user_profile = os.environ.get(PROFILE_ENV)
    use_shm_profile()
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"}
    if user_profile is None:
        env.pop(PROFILE_ENV, None)  # the node takes its own
    cams = [f"cam{i}" for i in range(args.cameras)]
    model = default_model()
    params = {"model": str(model), "mode": args.mode, "max_age_ms": args.max_age_ms, "camera_names": cams}
    for c in cams:
        params.update({f"cameras.{c}.image_topic": f"/camera/{c}/image_raw", f"cameras.{c}.camera_info_topic": "",
                       f"cameras.{c}.fallback_fx": 1000.0})
    ros_args = [a for k, v in params.items() for a in ("-p", f"{k}:={json.dumps(v)}")]
    logs = [open(log_dir / f"{n}.log", "wb") for n in ("node", "rig")]  # noqa: SIM115 - closed below
    node = subprocess.Popen([str(NODE), "--ros-args", *ros_args], env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    context = Context()
    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    me = rclpy.create_node("soak_bench", context=context)
    diag: list[tuple[float, dict[str, dict[str, str]]]] = []
    results: list[tuple[float, float]] = []  # (arrival time, latency s)
    me.create_subscription(DiagnosticArray, "/diagnostics", lambda a: diag.append(
        (time.monotonic(), {s.name: {kv.key: kv.value for kv in s.values} for s in a.status})), 50)
    for c in cams:
        me.create_subscription(Detection2DArray, f"/hydranet/{c}/detections", lambda m: results.append(
            (time.monotonic(), time.time() - (m.header.stamp.sec + m.header.stamp.nanosec / 1e9))), RELIABLE)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(me)
    rig = None
    samples: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 120
        while me.count_publishers(f"/hydranet/{cams[-1]}/detections") == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        plan = {"rate": args.rate, "count": 0, "stock": True, "wait_for": [f"/camera/{c}/image_raw" for c in cams],
                "streams": [{"topic": f"/camera/{c}/image_raw", "image": str(IMAGE), "size": size, "qos": "default",
                             "frame_id": c} for c in cams]}
        rig = subprocess.Popen([sys.executable, str(RIG), json.dumps(plan)], env=env, stdout=logs[1],
                               stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_sample = t0
        with tqdm(total=int(args.minutes * 60), desc="soak", unit="s") as bar:
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.1)
                if time.monotonic() >= next_sample:
                    samples.append((time.monotonic() - t0, rss_mb(node.pid)))
                    next_sample += 2.0
                    bar.n = int(time.monotonic() - t0)
                    bar.refresh()
                if node.poll() is not None:
                    raise SystemExit(f"the node exited ({node.returncode}); see {log_dir}/node.log")
    finally:
        for p in (rig, node):
            if p is not None:
                stop(p)
        for f in logs:
            f.close()
        executor.shutdown()
        me.destroy_node()
        rclpy.try_shutdown(context=context)

    minutes = []
    for m in range(int(np.ceil(args.minutes))):
        lo, hi = t0 + 60 * m, t0 + 60 * (m + 1)
        lat = [lt * 1000 for t, lt in results if lo <= t < hi]
        rss = [r for t, r in samples if 60 * m <= t < 60 * (m + 1)]
        cam_periods = [v for t, d in diag if lo <= t < hi for name, v in d.items() if name.startswith("hydranet: cam")]
        ages = [float(v["age_at_publish_ms_p95"]) for v in cam_periods
                if v.get("age_at_publish_ms_p95", "n/a") != "n/a"]
        minutes.append({
            "minute": m + 1, "rss_mb": round(float(np.mean(rss)), 1) if rss else None,
            "results_per_s": round(len(lat) / 60, 2),
            "e2e_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat else None,
            "e2e_p95_ms": round(float(np.percentile(lat, 95)), 1) if lat else None,
            "age_p95_ms_worst_period": round(max(ages), 1) if ages else None,
        })
    late = [(t, r) for t, r in samples if t >= 60]
    slope = float(np.polyfit([t / 60 for t, _ in late], [r for _, r in late], 1)[0]) if len(late) > 2 else float("nan")
    totals = {}
    if diag:
        for name, v in diag[-1][1].items():
            if name.startswith("hydranet: camera"):
                totals[name.split()[-1]] = {k: v[k] for k in v if k.endswith("_total")}
    rows = ["| minute | node RSS (MB) | results/s | e2e p50 (ms) | e2e p95 (ms) | age at publish p95 (ms, worst) |",
            "|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {m['minute']} | {m['rss_mb']} | {m['results_per_s']} | {m['e2e_p50_ms']} | {m['e2e_p95_ms']} | "
             f"{m['age_p95_ms_worst_period']} |" for m in minutes]
    summary = (f"soak: {args.minutes:g} min, {args.cameras} x {args.size} at {args.rate:g} Hz ({args.mode}, max_age_ms "
               f"{args.max_age_ms}), model {model.name}; RSS slope after the first minute {slope:+.2f} MB/min "
               f"({samples[0][1]:.0f} -> {samples[-1][1]:.0f} MB)")
    print("\n".join(rows))
    print(summary)
    for cam, t in totals.items():
        print(f"  {cam}: " + ", ".join(f"{k[:-6]} {v}" for k, v in t.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"soak_{time.strftime('%Y%m%d_%H%M%S')}.json"
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "machine": platform.platform(),
                                "minutes": minutes, "rss_samples": samples, "rss_slope_mb_per_min": slope,
                                "totals": totals, "summary": summary}, indent=2))
    print(f"wrote {path}; logs in {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
