"""hydranet demo: a recorded drive through the node, and a visual report of what it perceived.

With no arguments it replays the short Udacity drive shipped in the package (hydranet_ros/samples/udacity_drive,
MIT) through the trained default model. The pieces are the product's own, in the way an engineer uses them:

  1. hydranet_node starts as its own process in replay mode (every frame, in order, sim time), configured for the
     camera topics found in the bag;
  2. this process records the camera topics and every output of the node into an MCAP bag (`hydranet record`),
     and replays the bag with its timing and /clock (`hydranet replay`);
  3. once every frame has every output, it renders the report from the recording (`hydranet visualize`): an MP4,
     a PNG contact sheet and the latency summary from /diagnostics.

DDS stays on this machine (localhost discovery, a random domain), so the demo never talks to a real vehicle.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SAMPLE_BAG = SAMPLES / "udacity_drive"
# Where the sample drive's camera sits, estimated from its frames (no record of it exists): the pitch that makes the
# ego lane's two lines parallel on the ground (-0.03 rad, a little above level), the height that makes them 3.66 m
# apart, a US freeway lane (1.2 m). The demo's bird's-eye view and road-anchored depth rest on this estimate.
SAMPLE_MOUNTING = (0.0, 0.0, 1.2, 0.0, -0.03, 0.0)
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
# Not recorded unless asked: at 720p the overlay (2.7 MB) and the point cloud (~1 MB) would be most of the bag,
# and the node renders them only for subscribers, so leaving them out also keeps the demo fast.
HEAVY_OUTPUTS = ("overlay", "points")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", type=Path, default=None,
                   help="a rosbag2 folder (sqlite3 or MCAP) with camera images, a video file or an image folder "
                        "(default: the Udacity drive shipped with the package)")
    p.add_argument("--intrinsics", type=Path, default=None,
                   help="intrinsics JSON for a video or image folder (see hydranet make-bag); without it depth uses "
                        "the model's canonical focal length")
    p.add_argument("--every", type=int, default=1, help="video or image folder: keep every N-th frame (default: 1)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="video or image folder: stop after N frames (default: all)")
    p.add_argument("--model", type=Path, default=None, help="model .onnx (default: the package's default model)")
    p.add_argument("--mounting", default=None, metavar="X,Y,Z,ROLL,PITCH,YAW",
                   help="where the camera sits (its body frame in base_link; metres, radians; positive pitch looks "
                        "down): depth anchored to the road, the bird's-eye grid and lane polylines. Default: an "
                        "estimate for the sample drive, none for other sources; 'none': without")
    p.add_argument("--out", type=Path, default=Path("demo_out"),
                   help="folder for the recording and the report (default: %(default)s)")
    p.add_argument("--rate", type=float, default=0.5,
                   help="replay speed (default: %(default)s: about what a 2-core CPU processes; at a faster rate "
                        "the node queues frames, replay mode never drops, and the age on /diagnostics grows)")
    p.add_argument("--rows", type=int, default=6, help="frames on the contact sheet (default: %(default)s)")
    p.add_argument("--record-all", action="store_true",
                   help=f"also record the node's {' and '.join(HEAVY_OUTPUTS)} topics (large)")
    p.add_argument("--domain-id", type=int, default=None,
                   help="ROS_DOMAIN_ID to use (default: a random one, so the demo is isolated)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="give up after this many seconds (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the node's log and the ROS logs (default: removed after a successful run, kept and "
                        "named after a failure)")


@dataclass
class CameraTopics:
    name: str  # the node's camera name: its outputs go to /hydranet/<name>/...
    image_topic: str
    compressed: bool
    info_topic: str  # "" when the bag has no CameraInfo beside the images
    frames: int


class DemoError(RuntimeError):
    pass


def _camera_name(topic: str, taken: set[str]) -> str:
    """/camera/front/image_raw/compressed -> front: the last namespace part that is not an image_transport or
    image_pipeline suffix, made a valid parameter name, unique."""
    parts = [p for p in topic.strip("/").split("/")
             if p not in ("compressed", "image", "image_raw", "image_color", "image_rect", "image_rect_color")]
    name = re.sub(r"\W", "_", parts[-1] if parts else "front") or "front"
    if name[0].isdigit() or name == "camera":
        name = f"cam_{name}" if name != "camera" else "front"
    unique, i = name, 2
    while unique in taken:
        unique, i = f"{name}_{i}", i + 1
    return unique


def find_cameras(bag: Path) -> list[CameraTopics]:
    """Camera image topics in a bag (not the node's own outputs), each with the CameraInfo of its namespace."""
    from hydranet_ros.bags.rosbag import open_reader

    with open_reader(bag) as reader:
        counts: dict[str, tuple[str, int]] = {}
        for c in reader.connections:
            n = counts.get(c.topic, (c.msgtype, 0))[1]
            counts[c.topic] = (c.msgtype, n + c.msgcount)
    infos = {t for t, (msgtype, _) in counts.items() if msgtype == "sensor_msgs/msg/CameraInfo"}
    cameras: list[CameraTopics] = []
    for topic, (msgtype, n) in sorted(counts.items()):
        if msgtype not in IMAGE_TYPES or topic.startswith("/hydranet/") or n == 0:
            continue
        base = topic.removesuffix("/compressed")
        namespace = base.rsplit("/", 1)[0]
        info = f"{namespace}/camera_info"
        cameras.append(CameraTopics(_camera_name(topic, {c.name for c in cameras}), topic,
                                    msgtype.endswith("CompressedImage"), info if info in infos else "", n))
    if not cameras:
        listing = ", ".join(f"{t} ({m})" for t, (m, _) in sorted(counts.items())) or "none"
        raise DemoError(f"no camera images (sensor_msgs/Image or CompressedImage) in {bag}; its topics: {listing}")
    return cameras


def node_params(cameras: list[CameraTopics], model: Path, mounting: list[float] | None = None) -> str:
    """A params file for hydranet_node: replay mode on sim time, one camera per image topic of the bag, each with
    `mounting` when given."""
    lines = ["/**:", "  ros__parameters:", "    mode: replay", "    use_sim_time: true", f"    model: '{model}'",
             f"    camera_names: [{', '.join(c.name for c in cameras)}]", "    cameras:"]
    for c in cameras:
        lines += [f"      {c.name}:", f"        image_topic: '{c.image_topic}'",
                  f"        compressed: {'true' if c.compressed else 'false'}",
                  f"        camera_info_topic: '{c.info_topic}'", "        fallback_fx: 0.0",
                  "        frame_id: ''"]
        if mounting:
            lines.append(f"        mounting: [{', '.join(repr(float(v)) for v in mounting)}]")
    return "\n".join(lines) + "\n"


def _source_bag(args: argparse.Namespace, work: Path) -> Path:
    """The bag to replay: the argument (or the sample) as is, or a camera bag made from a video or image folder."""
    source = args.source or SAMPLE_BAG
    if not source.exists():
        raise DemoError(f"no such bag, video or image folder: {source}")
    if source.is_file() and source.suffix in (".mcap", ".db3") or (source / "metadata.yaml").is_file():
        return source
    from hydranet_ros.bags.make_bag import make_camera_bag

    print(f"hydranet demo: making a camera bag from {source} ...", flush=True)
    out = work / "camera_bag"
    # force: replaces the previous demo's camera bag (and only a bag): the source may have changed.
    make_camera_bag(source, out, compressed=True, intrinsics=args.intrinsics, every=args.every,
                    max_frames=args.max_frames, progress=not args.quiet, force=True)
    return out


def _mounting(args: argparse.Namespace) -> list[float] | None:
    """--mounting as a pose (checked), the sample drive's estimate by default, or None."""
    if args.mounting is None:
        return list(SAMPLE_MOUNTING) if args.source is None else None
    if args.mounting.strip().lower() == "none":
        return None
    from hydranet_ros.core.mounting import Mounting

    try:
        pose = [float(v) for v in args.mounting.split(",")]
    except ValueError:
        raise ValueError(f"--mounting must be six numbers X,Y,Z,ROLL,PITCH,YAW, got {args.mounting!r}") from None
    Mounting.from_pose(pose)  # MountingError (a ValueError) says what is wrong
    return pose


def _model(path: Path | None) -> Path:
    from hydranet_ros.core.contract import default_model_path

    model = path or default_model_path()
    if not model.is_file():
        raise DemoError(f"no model at {model}" + ("" if path else " (the default model ships in models/; a "
                                                       "package without it was installed incompletely)"))
    return model.resolve()


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise DemoError(f"hydranet_node exited (code {proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def run(args: argparse.Namespace) -> int:
    problems = [why for bad, why in ((args.rate <= 0, "--rate must be > 0"), (args.every < 1, "--every must be >= 1"),
                                     (args.max_frames is not None and args.max_frames < 1, "--max-frames must be >= 1"),
                                     (args.rows < 1, "--rows must be >= 1")) if bad]
    if problems:
        print(f"hydranet demo: {'; '.join(problems)}", file=sys.stderr)
        return 2
    t_start = time.monotonic()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="hydranet_demo_"))
    try:
        bag = _source_bag(args, out)
        cameras = find_cameras(bag)
        model = _model(args.model)
        args.mounting_pose = _mounting(args)
    except Exception as exc:  # noqa: BLE001 - every failure before the graph starts is the user's input
        print(f"hydranet demo: {exc}", file=sys.stderr)
        shutil.rmtree(log_dir, ignore_errors=True)  # nothing ran: nothing to read there
        return 2
    domain = args.domain_id if args.domain_id is not None else random.randint(1, 200)
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(log_dir))
    from hydranet_ros.bags.rosbag import BagError
    from hydranet_ros.ros.dds import use_shm_profile

    # The node picks its own profile (config/fastdds_node.xml) unless the user chose one: it must not inherit the
    # one this process (player, recorder) takes.
    node_env = dict(os.environ)
    use_shm_profile()
    recording = out / "recording"
    if recording.exists():
        if not (recording / "metadata.yaml").is_file():
            print(f"hydranet demo: {recording} exists and is not a bag; move it away", file=sys.stderr)
            return 2
        shutil.rmtree(recording)  # the previous demo's recording

    params = log_dir / "demo_params.yaml"
    params.write_text(node_params(cameras, model, args.mounting_pose))
    node_log = log_dir / "hydranet_node.out"
    frames = sum(c.frames for c in cameras)
    print(f"hydranet demo: {bag} -> {frames} frame(s) from "
          f"{', '.join(f'{c.image_topic} ({c.frames})' for c in cameras)}; model {model.name}")
    print(f"hydranet demo: ROS_DOMAIN_ID={domain}, discovery on localhost only, logs in {log_dir}", flush=True)
    if args.mounting_pose:
        print(f"hydranet demo: camera mounting {args.mounting_pose} (x, y, z, roll, pitch, yaw)"
              + (", estimated for the sample drive" if args.mounting is None else ""), flush=True)
    with open(node_log, "wb") as log:
        node_proc = subprocess.Popen([sys.executable, "-m", "hydranet_ros.ros.node", "--ros-args", "--params-file",
                                      str(params)], env=node_env, stdout=log, stderr=subprocess.STDOUT)
    status = 1
    try:
        _replay_and_record(args, bag, cameras, model, recording, node_proc, t_start)
        status = 0
    except (DemoError, BagError, TimeoutError, ValueError) as exc:
        print(f"\nhydranet demo: FAILED: {exc}", file=sys.stderr)
    finally:
        if node_proc.poll() is None:
            node_proc.send_signal(signal.SIGINT)
            try:
                node_proc.wait(10)
            except subprocess.TimeoutExpired:
                node_proc.kill()
        if status != 0:
            print("hydranet demo: hydranet_node said:", file=sys.stderr)
            for line in node_log.read_text(errors="replace").splitlines()[-40:]:
                print(f"  {line}", file=sys.stderr)
    if status != 0:
        print(f"hydranet demo: logs kept in {log_dir}", file=sys.stderr)
        return status
    if not args.keep_logs:
        shutil.rmtree(log_dir, ignore_errors=True)

    from hydranet_ros.bags.report import render_report

    print("hydranet demo: rendering the report ...", flush=True)
    # One report per camera; several cameras each get their own folder.
    reports = [render_report(recording, out / "report" / (c.name if len(cameras) > 1 else ""), camera=c.name,
                             sheet_rows=args.rows, progress=not args.quiet) for c in cameras]
    for report in reports:
        print(report.text)
    print(f"hydranet demo: done in {time.monotonic() - t_start:.0f} s.")
    for report in reports:
        print(f"  contact sheet : {report.sheet}")
        print(f"  video         : {report.video}")
        print(f"  latency table : {report.summary_md}")
    print(f"  recording     : {recording} (MCAP: open it in Foxglove, or `hydranet replay {recording}` for RViz)")
    return 0


def _replay_and_record(args: argparse.Namespace, bag: Path, cameras: list[CameraTopics], model: Path,
                       recording: Path, node_proc: subprocess.Popen, t_start: float) -> None:
    from hydranet_ros.ros.process import ros_process

    deadline = t_start + args.timeout
    with ros_process(handle_signals=False):  # Ctrl-C ends the whole demo (KeyboardInterrupt), the node included
        _play_and_record(args, bag, cameras, model, recording, node_proc, deadline)


def _play_and_record(args: argparse.Namespace, bag: Path, cameras: list[CameraTopics], model: Path,
                     recording: Path, node_proc: subprocess.Popen, deadline: float) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.logging import LoggingSeverity

    from hydranet_ros.bags.record import BagRecorder
    from hydranet_ros.bags.replay import BagPlayer

    node = rclpy.create_node("hydranet_demo")
    node.get_logger().set_level(LoggingSeverity.WARN)  # the recorder's "recording <topic>" lines are noise here
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    exclude = ["/rosout", "/parameter_events", "/clock"]
    if not args.record_all:
        exclude += [f"/hydranet/{c.name}/{t}" for c in cameras for t in HEAVY_OUTPUTS]
    recorder = BagRecorder(node, recording, topics=None, exclude=exclude)
    spinner.start()
    stop = threading.Event()
    try:
        player = BagPlayer(node, bag, rate=args.rate, topics=[t for c in cameras for t in (c.image_topic, c.info_topic)
                                                              if t])
        print("hydranet demo: waiting for hydranet_node to load the model and subscribe ...", flush=True)
        player.wait_for_subscribers([c.image_topic for c in cameras], timeout=max(1.0, deadline - time.monotonic()))
        # Every per-frame output of the model, and the replayed camera topics, must be recorded from their first
        # message: wait until the recorder has matched each of them.
        outputs = {c.name: _frame_outputs(model, c.name, exclude, bool(args.mounting_pose)) for c in cameras}
        wanted = [t for topics in outputs.values() for t in topics] + [t.topic for t in player.topics]
        _wait(lambda: all(t in recorder.counts or node.count_subscribers(t) >= 1 and node.count_publishers(t) >= 1
                          for t in wanted), 15.0, "the recorder to subscribe to " + ", ".join(wanted), node_proc)
        time.sleep(0.5)  # let the node's publishers match the recorder (discovery is per endpoint)
        total = sum(c.frames for c in cameras)
        played = threading.Thread(target=player.play, kwargs={"stop": stop}, daemon=True)
        played.start()
        _track(recorder, outputs, cameras, total, deadline, node_proc, quiet=args.quiet)
        played.join(timeout=max(1.0, deadline - time.monotonic()))
        # One more /diagnostics period, so that the latency summary covers the last frames.
        n_diag = recorder.counts.get("/diagnostics", 0)
        _wait(lambda: recorder.counts.get("/diagnostics", 0) >= n_diag + 2, 5.0, "/diagnostics", node_proc)
    finally:
        stop.set()
        summary = recorder.close()
        executor.shutdown()
        node.destroy_node()
        spinner.join(timeout=5)
    print(summary.table())


def _frame_outputs(model: Path, camera: str, exclude: list[str], mounted: bool = False) -> list[str]:
    """The topics on which the node publishes a message for every frame of `camera`, from the model's contract
    (the node creates them all at configure, before it subscribes to the camera); with a mounting also the
    bird's-eye grid and the lane polylines of the default heads."""
    from hydranet_ros.runtime.contract import load_contract

    contract = load_contract(model)
    base = f"/hydranet/{camera}"
    topics = [f"{base}/{t.name}" for t in contract.tasks]
    topics += [f"{base}/{t.name}/camera_info" for t in contract.tasks_of_type("depth")] + [f"{base}/overlay"]
    if contract.tasks_of_type("depth"):
        topics.append(f"{base}/points")
    if contract.tasks_of_type("detection") and contract.tasks_of_type("depth"):
        topics += [f"{base}/detections_3d", f"{base}/markers"]
    names = {t.name for t in contract.tasks_of_type("segmentation")}
    if mounted:
        topics += [f"{base}/{topic}" for head, topic in (("drivable_area", "drivable_grid"),
                                                         ("lane_lines", "lane_polylines")) if head in names]
    return [t for t in topics if t not in exclude]


def _track(recorder, outputs: dict[str, list[str]], cameras: list[CameraTopics], total: int, deadline: float,
           node_proc: subprocess.Popen, quiet: bool) -> None:
    """A progress bar of frames through the node, until every frame has every output."""
    from hydranet_ros.core.progress import show_progress

    def done() -> int:
        # A frame is done when its last output is recorded: the least-advanced output topic of each camera.
        return sum(min(recorder.counts.get(t, 0) for t in outputs[c.name]) for c in cameras)

    with show_progress(total=total, unit="frame", desc="hydranet demo: frames through the node", enabled=not quiet,
                       dynamic_ncols=True) as bar:
        while (n := done()) < total:
            bar.update(n - bar.n)
            if node_proc.poll() is not None:
                raise DemoError(f"hydranet_node exited (code {node_proc.returncode}) after {n} of {total} frames")
            if time.monotonic() > deadline:
                raise DemoError(f"timed out with {n} of {total} frames through the node (see --timeout)")
            time.sleep(0.1)
        bar.update(total - bar.n)
