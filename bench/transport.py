"""Frames from a camera driver in its stock configuration into hydranet_node: how many arrive.

    .venv/bin/python bench/transport.py [--frames 200] [--rate 10] [--sizes 640x480,1280x720,1920x1080]

For each frame size and each way the camera can publish (reliable: rclpy's default, keep last 10; best effort:
the sensor-data profile), the camera rig (test/procs/camera.py with "stock": Fast DDS exactly as installed, none
of our profile) publishes --frames frames at --rate into a node of its own, after three tiny warm-up frames (so
that the node sees the publisher's first sequence number). Each cell is the share of the camera's frames that
reached the node (received, or overwritten in its reader queue because it took them late), with the node's own
count of those lost on the way; received + lost + overwritten equals what the camera sent, or the cell says so.

Columns, side by side in one run:
  node            this node as shipped: config/fastdds_node.xml, cameras.<name>.qos auto, live mode
  node replay     the same in replay mode (reliable cameras only: a best-effort camera has nothing to repair)
  before          the node before issue 12: our shared-memory profile (config/fastdds_shm.xml), input best effort

The node runs the default spec at 320x192 with untrained heads (what the tests use): transport, not the model,
is measured. Prints a markdown table and writes bench/results/transport_<timestamp>.json. The UDP receive
buffer the kernel allows (net.core.rmem_max) decides the best-effort columns; it is in the table's heading.
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

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from node_latency import stop  # bench/ is on sys.path when a script of it runs
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from tqdm import tqdm

from hydranet_ros.ros.dds import PROFILE_ENV, udp_receive_buffer_limit, use_shm_profile
from hydranet_ros.ros.params import config_file

REPO = Path(__file__).resolve().parents[1]
RIG = REPO / "test" / "procs" / "camera.py"
IMAGE = REPO / "hydranet_ros" / "samples" / "project_video_0750.jpg"
NODE = Path(sys.executable).parent / "hydranet_node"
WARMUP = 3
CAMERA_QOS = {"reliable": "default", "best_effort": "sensor_data"}
COLUMNS = {  # name: (node parameters, Fast DDS profile of the node: None = its own)
    "node": ({"mode": "live"}, None),
    "node replay": ({"mode": "replay"}, None),
    "before": ({"mode": "live", "cameras.front.qos": "best_effort"}, "fastdds_shm.xml"),
}


def test_model(cache: Path) -> Path:
    """The default spec at the tests' 320x192, untrained heads, exported once."""
    out = cache / "hydranet_transport_bench.onnx"
    if not out.is_file():
        import torch

        from hydranet_ros.model.export import export_onnx
        from hydranet_ros.model.spec import load_spec

        torch.manual_seed(0)
        export_onnx(load_spec(REPO / "config" / "models" / "hydranet_effl0_road.yaml").with_input_size("320x192"), out)
    return out


def one_cell(model: Path, size: tuple[int, int], camera: str, column: str, frames: int, rate: float,
             log_dir: Path) -> dict:
    params, profile = COLUMNS[column]
    domain = random.randint(1, 200)
    env = {k: v for k, v in os.environ.items() if k != PROFILE_ENV}
    env.update(ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    node_env = dict(env)
    if profile:
        node_env[PROFILE_ENV] = str(config_file(profile))
    context = Context()
    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    listener = rclpy.create_node("transport_bench", context=context)
    latest: dict[str, str] = {}

    def on_diag(array: DiagnosticArray) -> None:
        for s in array.status:
            if s.name == "hydranet: camera front":
                latest.clear()
                latest.update({kv.key: kv.value for kv in s.values})

    listener.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    tag = f"{size[0]}x{size[1]}_{camera}_{column.replace(' ', '_')}"
    logs = [open(log_dir / f"{tag}.{n}.log", "wb") for n in ("node", "rig")]  # noqa: SIM115 - closed below
    ros_args = ["-p", f"model:={model}", "-p", "cameras.front.camera_info_topic:=''", "-p", "max_age_ms:=5000"]
    ros_args += [a for k, v in params.items() for a in ("-p", f"{k}:={json.dumps(v)}")]
    node = subprocess.Popen([str(NODE), "--ros-args", *ros_args], env=node_env, stdout=logs[0],
                            stderr=subprocess.STDOUT)
    plan = {"rate": rate, "count": frames, "stock": True, "warmup": WARMUP, "wait_for": ["/camera/front/image_raw"],
            "streams": [{"topic": "/camera/front/image_raw", "image": str(IMAGE), "size": list(size),
                         "qos": CAMERA_QOS[camera]}]}
    try:
        deadline = time.monotonic() + 60
        while listener.count_subscribers("/camera/front/image_raw") == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        rig = subprocess.Popen([sys.executable, str(RIG), json.dumps(plan)], env=env, stdout=subprocess.PIPE,
                               stderr=logs[1], text=True)
        out, _ = rig.communicate(timeout=frames / rate + 120)
        sent = json.loads(out.strip().splitlines()[-1])["published"]["/camera/front/image_raw"]

        def arrived() -> int:
            return sum(int(latest.get(k, 0)) for k in ("received_total", "lost_in_transport_total",
                                                       "dropped_overrun_total"))

        deadline = time.monotonic() + 15
        while (not latest or arrived() < sent) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        received, lost, overrun = (int(latest.get(k, 0)) for k in (
            "received_total", "lost_in_transport_total", "dropped_overrun_total"))
        return {"size": f"{size[0]}x{size[1]}", "camera": camera, "column": column, "sent": sent,
                "received": received, "lost_in_transport": lost, "overwritten_in_node": overrun,
                "reached": received + overrun, "accounted": received + lost + overrun == sent}
    finally:
        stop(node)
        for f in logs:
            f.close()
        executor.shutdown()
        listener.destroy_node()
        rclpy.try_shutdown(context=context)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200, help="frames per cell (default: %(default)s)")
    ap.add_argument("--rate", type=float, default=10.0, help="camera rate, Hz (default: %(default)s)")
    ap.add_argument("--sizes", default="640x480,1280x720,1920x1080", help="frame sizes (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="folder for the JSON")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    log_dir = Path(tempfile.mkdtemp(prefix="hydranet_transport_"))
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(log_dir))
    os.environ.pop("ROS_STATIC_PEERS", None)
    use_shm_profile()  # this process only: the listener
    model = test_model(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hydranet_ros")
    cells = [(size, camera, column) for size in sizes for camera in CAMERA_QOS for column in COLUMNS
             if not (camera == "best_effort" and column == "node replay")]
    results = []
    for size, camera, column in tqdm(cells, desc="cells", unit="cell"):
        results.append(one_cell(model, size, camera, column, args.frames, args.rate, log_dir))
    rmem = udp_receive_buffer_limit()
    header = (f"stock camera -> hydranet_node, {args.frames} frames at {args.rate:g} Hz; net.core.rmem_max "
              f"{rmem / 2**20:.1f} MiB" if rmem else "unknown")
    rows = [header, "", "| frame | camera publishes | " + " | ".join(COLUMNS) + " |",
            "|---|---|" + "---:|" * len(COLUMNS)]
    for size in sizes:
        for camera in CAMERA_QOS:
            cells_text = []
            for column in COLUMNS:
                r = next((r for r in results if r["size"] == f"{size[0]}x{size[1]}" and r["camera"] == camera
                          and r["column"] == column), None)
                if r is None:
                    cells_text.append("-")
                    continue
                note = "" if r["accounted"] else f", {r['sent'] - r['received'] - r['lost_in_transport']} uncounted"
                cells_text.append(f"{r['reached']} / {r['sent']} ({r['lost_in_transport']} lost{note})")
            rows.append(f"| {size[0]}x{size[1]} | {camera} | " + " | ".join(cells_text) + " |")
    table = "\n".join(rows)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"transport_{time.strftime('%Y%m%d_%H%M%S')}.json"
    path.write_text(json.dumps({"frames": args.frames, "rate_hz": args.rate, "rmem_max": rmem,
                                "machine": platform.platform(), "cells": results, "table": table}, indent=2))
    print(f"wrote {path}; logs in {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
