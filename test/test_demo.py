"""`hydranet demo`, the README's main command, end to end: the shipped sample drive through a real hydranet_node
process in replay mode, recorded into MCAP, and rendered into the report. Nothing is faked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hydranet_ros.bags.report.panels import MAX_SHEET_WIDTH
from hydranet_ros.bags.rosbag import open_reader
from hydranet_ros.tools.demo import SAMPLE_BAG

HYDRANET = [str(Path(sys.executable).parent / "hydranet")]
SAMPLES = Path(__file__).resolve().parents[1] / "hydranet_ros" / "samples"
OUTPUTS = ["drivable_area", "lane_lines", "depth", "depth/camera_info", "detections", "detections_3d", "markers"]


def stamps(bag: Path) -> dict[str, list[int]]:
    """Header stamps (ns) per topic, in recorded order."""
    out: dict[str, list[int]] = {}
    with open_reader(bag) as reader:
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.msgtype == "visualization_msgs/msg/MarkerArray":
                msg = msg.markers[0]  # the DELETEALL marker that starts every array carries the frame's header
            header = getattr(msg, "header", None)
            if header is not None:
                out.setdefault(conn.topic, []).append(header.stamp.sec * 10**9 + header.stamp.nanosec)
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, ros_session):
    """One run of the demo with no source argument (the shipped sample), as the README runs it."""
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    proc = subprocess.run(HYDRANET + ["demo", "--out", str(out), "--domain-id", str(ros_session.domain_id)],
                          capture_output=True, text=True, timeout=600, env=ros_session.env())
    return proc, out


def test_demo_exits_cleanly_and_prints_where_the_report_is(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"contact sheet : {out / 'report' / 'contact_sheet.png'}" in proc.stdout
    assert "frames through the node" in proc.stderr  # the progress bar
    assert "all 44 frames have every output" in proc.stdout
    logs = Path(proc.stdout.split("logs in ", 1)[1].split()[0])
    assert logs.name.startswith("hydranet_demo_") and not logs.exists()  # a successful run leaves nothing behind


def test_every_sample_frame_has_every_output_in_order(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open_reader(SAMPLE_BAG) as reader:
        inputs = [reader.deserialize(raw, c.msgtype).header.stamp for c, _, raw in reader.messages()
                  if c.msgtype.endswith("CompressedImage")]
    sent = [s.sec * 10**9 + s.nanosec for s in inputs]
    assert len(sent) == 44
    got = stamps(out / "recording")
    assert got["/camera/front/image_raw/compressed"] == sent  # the replayed input was recorded too
    for topic in OUTPUTS:
        assert got[f"/hydranet/front/{topic}"] == sent, topic


def test_the_report_has_the_right_sizes_and_real_content(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = out / "report"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["frames"] == 44 and summary["image_topic"] == "/camera/front/image_raw/compressed"
    assert not any(summary["missing"].values())

    video = cv2.VideoCapture(str(report / "report.mp4"))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 44
    h, w = frames[0].shape[:2]
    # Five 640x360 panels of a 16:9 camera side by side, plus titles: the sample drive has a mounting (the
    # demo's estimate), so the bird's-eye panel is there.
    assert h >= 360 and w >= 5 * 640

    sheet = cv2.imread(str(report / "contact_sheet.png"))
    scale = min(1.0, MAX_SHEET_WIDTH / w)
    assert sheet.shape[1] == round(w * scale) and sheet.shape[0] > 6 * h * scale * 0.9  # six rows of the layout

    # The panels of one frame: camera | drivable + lanes | depth | boxes | bird's eye, 1/5 of the width each.
    frame = frames[20].astype(np.int16)
    panel = w // 5
    lower = slice(h // 2, h - 10)
    camera, seg, depth = (frame[lower, i * panel + 10:(i + 1) * panel - 10] for i in range(3))
    tinted = np.abs(seg - camera).sum(axis=2) > 40
    assert 0.10 < tinted.mean() < 0.9, "the drivable area tints part of the road in the lower half"
    assert seg[..., 1][tinted].mean() > camera[..., 1][tinted].mean(), "the tint is green"
    assert depth.std() > 10, "the depth colour map is not constant"
    bev = frame[lower, 4 * panel + 10:w - 10]
    green = (bev[..., 1] > 140) & (bev[..., 0] < 120) & (bev[..., 2] < 120)  # GRID_COLOURS free (BGR here)
    assert green.mean() > 0.02, "the bird's-eye panel shows drivable cells"
    assert summary["frames"] == 44 and "camera mounting" in proc.stdout

    # The latency summary comes from the node's /diagnostics: every stage measured, all 44 frames received.
    front = summary["cameras"]["front"]
    for stage in ("decode", "preprocess", "infer", "postprocess", "publish"):
        assert front["latency_ms"][stage]["mean"] > 0, stage
    assert front["totals"]["received_total"] == front["totals"]["published_total"] == 44
    assert "| infer |" in (report / "summary.md").read_text()


def test_demo_takes_an_image_folder_and_makes_the_bag_itself(ros, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for jpg in sorted(SAMPLES.glob("project_video_*.jpg")):
        shutil.copy(jpg, frames / jpg.name)
    out = tmp_path / "out"
    intrinsics = SAMPLES / "udacity_camera_intrinsics.json"
    proc = subprocess.run(HYDRANET + ["demo", str(frames), "--intrinsics", str(intrinsics), "--out", str(out),
                                      "--domain-id", str(ros.domain_id), "--rows", "2", "--quiet"],
                          capture_output=True, text=True, timeout=300, env=ros.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 2 frames have every output" in proc.stdout
    assert "canonical focal length" not in proc.stdout  # calibrated: nothing to warn about
    assert (out / "camera_bag" / "metadata.yaml").is_file()
    got = stamps(out / "recording")
    assert len(got["/hydranet/front/detections"]) == 2 and got["/camera/front/camera_info"]


def test_demo_takes_a_real_video(ros, tmp_path, shared_assets):
    video = shared_assets / "udacity" / "videos" / "solidWhiteRight.mp4"  # 960x540, another camera than the sample
    out = tmp_path / "out"
    proc = subprocess.run(HYDRANET + ["demo", str(video), "--every", "20", "--max-frames", "4", "--out", str(out),
                                      "--domain-id", str(ros.domain_id), "--rows", "2", "--quiet"],
                          capture_output=True, text=True, timeout=300, env=ros.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 4 frames have every output" in proc.stdout
    sheet = cv2.imread(str(out / "report" / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] > 4 * 600
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["frames"] == 4 and summary["cameras"]["front"]["totals"]["published_total"] == 4
    # No --intrinsics: the console and the summary say what /diagnostics said, that depth has no calibration.
    assert summary["cameras"]["front"]["focal_length_from"] == "canonical"
    assert "depth used the model's canonical focal length" in proc.stdout
    assert any("canonical focal length" in n for n in summary["notes"])


def two_camera_bag(path: Path, frames: int) -> Path:
    """The first frames of the sample drive, as two synchronised cameras (front and left: the same pictures)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    with open_reader(SAMPLE_BAG) as reader, Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns: dict[str, object] = {}
        images = 0
        for conn, t, raw in reader.messages():
            images += conn.msgtype.endswith("CompressedImage")
            if images > frames:
                break
            for cam in ("front", "left"):
                topic = conn.topic.replace("/front/", f"/{cam}/")
                if topic not in conns:
                    conns[topic] = writer.add_connection(topic, conn.msgtype, msgdef=conn.msgdef.data,
                                                         rihs01=conn.digest)
                writer.write(conns[topic], t, raw)
    return path


def test_demo_batches_two_cameras_and_reports_each(ros, tmp_path):
    bag = two_camera_bag(tmp_path / "two_cameras", frames=4)
    out = tmp_path / "out"
    proc = subprocess.run(HYDRANET + ["demo", str(bag), "--out", str(out), "--domain-id", str(ros.domain_id),
                                      "--rows", "2", "--quiet"],
                          capture_output=True, text=True, timeout=300, env=ros.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = stamps(out / "recording")
    assert got["/hydranet/front/detections"] == got["/hydranet/left/detections"] == got["/camera/left/camera_info"]
    assert len(got["/hydranet/front/detections"]) == 4
    for cam in ("front", "left"):
        summary = json.loads((out / "report" / cam / "summary.json").read_text())
        assert summary["camera"] == cam and summary["frames"] == 4
        assert (out / "report" / cam / "contact_sheet.png").stat().st_size > 100_000
    # Both cameras' frames of an instant went through the network together: a batch of 2.
    assert float(summary["engine"]["mean_batch_size"]) > 1.0, summary["engine"]


def test_demo_on_bad_input_is_a_clear_error(tmp_path):
    missing = subprocess.run(HYDRANET + ["demo", str(tmp_path / "nope.mcap")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "no such bag, video or image folder" in missing.stderr
    bad_rate = subprocess.run(HYDRANET + ["demo", "--rate", "0", "--every", "0"], capture_output=True, text=True,
                              timeout=60)
    assert bad_rate.returncode == 2 and "--rate must be > 0; --every must be >= 1" in bad_rate.stderr
    # A bag with no camera images: the error lists what it has.
    from rosbags.rosbag2 import StoragePlugin, Writer

    from hydranet_ros.bags.rosbag import typestore

    store = typestore()
    bag = tmp_path / "no_camera"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        writer.write(conn, 1, store.serialize_cdr(store.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"))
    out = subprocess.run(HYDRANET + ["demo", str(bag), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "no camera images" in out.stderr and "/chatter (std_msgs/msg/String)" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_head_added_in_the_spec_is_published_on_its_own_topic_and_shown_in_the_report(ros, tmp_path):
    """A second segmentation head and a second depth head are spec entries only: the exported model, the node,
    the recording and the report take them with no other change (issue 14)."""
    import yaml

    from hydranet_ros.model.export import export_onnx
    from hydranet_ros.model.spec import ModelSpec

    doc = yaml.safe_load((SAMPLES.parents[1] / "config" / "models" / "hydranet_effl0_road.yaml").read_text())
    doc["input"] = {"width": 320, "height": 192}
    doc["heads"].append({"name": "sidewalk", "type": "segmentation", "classes": ["background", "sidewalk"]})
    doc["heads"].append({"name": "depth_far", "type": "depth", "max_depth": 300.0, "canonical_fx": 1000.0})
    model = export_onnx(ModelSpec.from_dict(doc), tmp_path / "five_heads.onnx")
    frames = tmp_path / "frames"
    frames.mkdir()
    for jpg in sorted(SAMPLES.glob("project_video_*.jpg")):
        shutil.copy(jpg, frames / jpg.name)
    out = tmp_path / "out"
    proc = subprocess.run(HYDRANET + ["demo", str(frames), "--model", str(model), "--out", str(out), "--rows", "2",
                                      "--domain-id", str(ros.domain_id), "--quiet"],
                          capture_output=True, text=True, timeout=300, env=ros.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = stamps(out / "recording")
    base = "/hydranet/front"
    for topic in ("sidewalk", "depth_far", "depth_far/camera_info", "drivable_area", "depth", "depth/camera_info"):
        assert len(got.get(f"{base}/{topic}", [])) == 2, topic
    with open_reader(out / "recording") as reader:
        infos = {c.topic: reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                 if c.topic.endswith("label_info")}
    assert [c.class_name for c in infos[f"{base}/sidewalk/label_info"].class_map] == ["background", "sidewalk"]
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["outputs"]["masks"] == ["drivable_area", "lane_lines", "sidewalk"]
    assert summary["outputs"]["depth"] == "depth" and summary["completeness"].startswith("all 2 frames")
    assert "shown: masks drivable_area, lane_lines, sidewalk" in proc.stdout


def test_the_readmes_recorded_drives_block_runs_as_written(demo_run, ros_session, tmp_path):
    """The README's bag block with `bash -e`: make-bag, record while replaying, a replay window, and visualize of
    the demo's recording (its /tmp paths are a temporary folder here, `demo_out` the demo run above)."""
    import re

    proc, out = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"^```bash\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
                if b.startswith("export ROS_AUTOMATIC_DISCOVERY_RANGE")]
    script = (block.replace("/tmp/", f"{tmp_path}/").replace("demo_out/", f"{out}/")
              .replace("H=.venv/bin/hydranet", f"H={HYDRANET[0]}"))
    run = subprocess.run(["bash", "-e", "-c", script], cwd=SAMPLES.parents[1], env=ros_session.env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(stamps(tmp_path / "stills_bag")["/camera/front/image_raw/compressed"]) == len(
        list(SAMPLES.glob("*.jpg")))
    copied = stamps(tmp_path / "copy_bag")
    assert len(copied["/camera/front/image_raw/compressed"]) == 2 * 44  # --loops 2 of the sample drive
    assert (tmp_path / "report" / "contact_sheet.png").is_file()
