"""Dataset importers and `hydranet import`, on the real files of ../shared/assets.

BDD100K ships no labels in ../shared, so its tests write small fixtures in BDD100K's official formats (a det_20
JSON, 2018 per-image JSONs, 2020 drivable masks) for two of the real BDD frames. The bag tests write a real
rosbag2 (sqlite3 and MCAP) with rosbags' writer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hydranet_ros.core import frames
from hydranet_ros.tools import import_data
from hydranet_ros.train import importers
from hydranet_ros.train.manifest import read_boxes, read_depth, read_manifest, read_segmentation

CLASSES = ("vehicle", "pedestrian", "cyclist")
SIM_EPISODES = 72


def cli(*argv: str) -> int:
    """`hydranet import ARGV` through the verb's own parser and run(), as tools/cli.py calls them."""
    p = argparse.ArgumentParser(prog="hydranet import")
    import_data.add_arguments(p)
    return import_data.run(p.parse_args([str(a) for a in argv]))


# --- sim ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim(shared_assets):
    return importers.import_sim(shared_assets / "sim")


def test_sim_has_every_frame_with_all_four_tasks(sim, shared_assets):
    meta = json.loads((shared_assets / "sim" / "dataset.json").read_text())
    assert len(sim) == 1500
    assert len({s.extra["episode"] for s in sim}) == SIM_EPISODES
    for s in sim:
        assert set(s.labels) == {"drivable_area", "lane_lines", "depth", "detections"}
        assert s.image.is_file() and s.size == (640, 384)
        assert all(Path(label["file"]).is_file() for label in s.labels.values() if "file" in label)
    k = meta["intrinsics"]
    assert sim[0].intrinsics == (k["fx"], k["fy"], k["cx"], k["cy"])
    # Both segmentation tasks read the one semantic PNG: no label copies.
    assert sim[7].labels["drivable_area"]["file"] == sim[7].labels["lane_lines"]["file"]


@pytest.mark.parametrize("index", [0, 777, 1499])
def test_sim_segmentation_maps_the_semantic_classes(sim, index):
    s = sim[index]
    semantic = cv2.imread(str(s.labels["drivable_area"]["file"]), cv2.IMREAD_UNCHANGED)
    drivable, lanes = read_segmentation(s.labels["drivable_area"]), read_segmentation(s.labels["lane_lines"])
    assert set(np.unique(drivable)) <= {0, 1} and set(np.unique(lanes)) <= {0, 1}
    assert drivable[192:].sum() > 0.75 * drivable.sum() > 0  # the road is below the horizon
    assert lanes.any() and not (lanes & (1 - drivable)).any()  # lane paint lies on the road
    assert not drivable[semantic == 4].any()  # vehicles are not drivable
    assert (drivable == np.isin(semantic, (1, 2))).all()


def test_sim_depth_is_metres(sim):
    s = sim[300]
    png = cv2.imread(str(s.labels["depth"]["file"]), cv2.IMREAD_UNCHANGED)
    depth = read_depth(s.labels["depth"])
    np.testing.assert_array_equal(depth, png.astype(np.float32) / 256)
    road = depth[380, 320]  # just ahead of the car, ~2 m camera height pitched 7.5 deg down: a few metres
    assert 2.0 < road < 15.0


def test_sim_boxes_are_the_jsons_full_boxes_inside_the_image(sim, shared_assets):
    n_boxes = n_ignore = 0
    for s in sim[::50]:
        raw = json.loads((shared_assets / "sim" / "boxes" / f"{s.image.stem}.json").read_text())
        boxes, ignore = read_boxes(s.labels["detections"], CLASSES)
        assert len(boxes) == len(raw)
        n_ignore += len(ignore)
        expected = np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in raw]).reshape(-1, 4)
        np.testing.assert_allclose(boxes[:, :4], expected, atol=0.01)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 640).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 384).all()
        assert (boxes[:, 4] == 0).all()  # car and truck are both "vehicle"
        n_boxes += len(boxes)
    assert n_boxes > 100
    assert 0 < n_ignore < n_boxes / 10  # the few vehicles mostly outside the image


def test_sim_vehicles_without_a_box_become_dont_care(sim):
    """Every vehicle blob of >= 50 px lies in a box or in a don't-care region; boxed frames get no extra region."""
    import cv2

    frames = [s for s in sim if any(b[4] == "ignore" for b in s.labels["detections"]["boxes"])]
    assert frames
    for s in frames[:5]:
        ids = cv2.imread(str(s.labels["drivable_area"]["file"]), cv2.IMREAD_UNCHANGED)
        covered = np.zeros(ids.shape, bool)
        for x1, y1, x2, y2, _ in s.labels["detections"]["boxes"]:
            covered[int(y1):int(np.ceil(y2)) + 1, int(x1):int(np.ceil(x2)) + 1] = True
        n, comp, stats, _ = cv2.connectedComponentsWithStats(((ids == 4) & ~covered).astype(np.uint8))
        assert all(area < 50 for area in stats[1:n, 4])


def test_sim_val_split_shares_no_episode(shared_assets, tmp_path, capsys):
    out = tmp_path / "sim.jsonl"
    assert cli("sim", shared_assets / "sim", "-o", out, "--val-fraction", "0.2") == 0
    train, val = read_manifest(out), read_manifest(tmp_path / "sim_val.jsonl")
    train_eps, val_eps = {s.extra["episode"] for s in train}, {s.extra["episode"] for s in val}
    assert len(train) + len(val) == 1500
    assert not train_eps & val_eps and len(val_eps) == round(0.2 * SIM_EPISODES)
    assert f"wrote {len(val)} samples to {tmp_path / 'sim_val.jsonl'}" in capsys.readouterr().out
    # The choice depends on the episodes only: the same split from the samples in another order.
    again = importers.split_by_episode(importers.import_sim(shared_assets / "sim")[::-1], 0.2)[1]
    assert {s.extra["episode"] for s in again} == val_eps


# --- KITTI --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kitti(shared_assets):
    return {s.image.stem: s for s in importers.import_kitti(shared_assets / "kitti")}


def test_kitti_boxes_are_label_2s_numbers(kitti, shared_assets):
    lines = [ln.split() for ln in (shared_assets / "kitti/label_2/000008.txt").read_text().splitlines()]
    boxes = kitti["000008"].labels["detections"]["boxes"]
    assert [b[:4] for b in boxes] == [[float(v) for v in ln[4:8]] for ln in lines]
    assert [b[4] for b in boxes] == ["vehicle" if ln[0] == "Car" else "ignore" for ln in lines]


def test_kitti_maps_every_class(kitti):
    classes = {b[4] for s in kitti.values() for b in s.labels["detections"]["boxes"]}
    assert classes == {"vehicle", "pedestrian", "cyclist", "ignore"}
    assert importers.KITTI_CLASSES["Van"] == "vehicle" and importers.KITTI_CLASSES["Person_sitting"] == "pedestrian"


def test_kitti_intrinsics_size_and_depth(kitti, shared_assets):
    for stem, s in kitti.items():
        p2 = next(ln for ln in (shared_assets / f"kitti/calib/{stem}.txt").read_text().splitlines()
                  if ln.startswith("P2:"))
        p = np.array(p2.split()[1:], dtype=float).reshape(3, 4)
        assert s.intrinsics == (p[0, 0], p[1, 1], p[0, 2], p[1, 2])
        h, w = cv2.imread(str(s.image)).shape[:2]
        assert s.size == (w, h)
    with_depth = {stem for stem, s in kitti.items() if "depth" in s.labels}
    assert with_depth == {p.stem for p in (shared_assets / "kitti/sparse_depth").glob("*.png")}
    assert with_depth == {"000000", "000001", "000002", "000008"}
    depth = read_depth(kitti["000008"].labels["depth"])
    assert depth.shape == (375, 1242) and 0.01 < (depth > 0).mean() < 0.2  # one sparse LiDAR sweep


# --- kitti101: the split, every class, LiDAR depth ----------------------------------------------------------------

KITTI101_COUNTS = {"vehicle": 351, "pedestrian": 52, "cyclist": 18, "ignore": 255}  # Car+Van+Truck, +Person_sitting,
#                                                                                     Tram + Misc + DontCare


def test_kitti101_split_is_respected_and_val_is_marked(shared_assets, tmp_path, capsys):
    root = shared_assets / "kitti101"
    split = json.loads((root / "split.json").read_text())
    parts = {}
    for name in ("train", "val"):
        assert cli("kitti", root, "--split", name, "-o", tmp_path / f"{name}.jsonl") == 0
        parts[name] = read_manifest(tmp_path / f"{name}.jsonl")
        assert sorted(s.image.stem for s in parts[name]) == sorted(split[name])
    assert len(parts["train"]) == 80 and len(parts["val"]) == 21
    # val frames carry the held-out mark, in every manifest they reach (also from an import of all frames).
    assert all(s.extra.get("held_out") for s in parts["val"]) and not any(s.extra.get("held_out")
                                                                          for s in parts["train"])
    everything = importers.import_kitti(root)
    assert sorted(s.image.stem for s in everything if s.extra.get("held_out")) == sorted(split["val"])
    counts: dict[str, int] = {}
    for s in everything:
        for b in s.labels["detections"]["boxes"]:
            counts[b[4]] = counts.get(b[4], 0) + 1
    assert counts == KITTI101_COUNTS
    assert "--split applies to kitti" in _error(capsys, "frames", root / "image_2", "--split", "val",
                                                "-o", tmp_path / "x.jsonl")


def _error(capsys, *argv) -> str:
    capsys.readouterr()
    assert cli(*argv) == 2
    return capsys.readouterr().err


def test_kitti101_lidar_depth_is_metres_on_the_objects_pixels(shared_assets):
    """The sparse depth PNG decodes to metres at the pixels of the labelled objects: inside each clearly visible
    object's box (unoccluded, untruncated, < 40 m), the near LiDAR returns lie at the label's own depth (z)."""
    root = shared_assets / "kitti101"
    close, checked = 0, 0
    for s in importers.import_kitti(root):
        depth = read_depth(s.labels["depth"])
        assert depth.shape == (s.size[1], s.size[0])
        p2 = next(ln for ln in (root / f"calib/{s.image.stem}.txt").read_text().splitlines() if ln.startswith("P2:"))
        p = np.array(p2.split()[1:], dtype=float).reshape(3, 4)
        assert s.intrinsics == (p[0, 0], p[1, 1], p[0, 2], p[1, 2])
        for line in (root / f"label_2/{s.image.stem}.txt").read_text().splitlines():
            f = line.split()
            if f[0] not in ("Car", "Pedestrian", "Cyclist") or int(f[2]) or float(f[1]) or float(f[13]) > 40:
                continue
            x1, y1, x2, y2 = (int(float(v)) for v in f[4:8])
            inside = depth[y1:y2 + 1, x1:x2 + 1]
            inside = inside[inside > 0]
            if inside.size < 5:
                continue
            checked += 1
            close += abs(np.percentile(inside, 10) - float(f[13])) < 3.0
    assert checked > 100 and close / checked > 0.95


def test_trainer_refuses_held_out_frames_by_any_path(shared_assets):
    from hydranet_ros.train.config import ConfigError
    from hydranet_ros.train.trainer import refuse_held_out

    root = shared_assets / "kitti101"
    val = importers.import_kitti(root, split="val")
    train = importers.import_kitti(root, split="train")
    refuse_held_out(train, val)  # the clean split passes
    with pytest.raises(ConfigError, match="held out for evaluation"):
        refuse_held_out(train + val[:1], [])
    # The same image brought in unmarked (as a plain folder of frames): caught by its bytes.
    frames = importers.import_image_folder(root / "image_2")
    with pytest.raises(ConfigError, match="is the held-out image"):
        refuse_held_out(frames, val)


def test_manifest_split_by_condition_list(shared_assets, tmp_path, capsys):
    from hydranet_ros.tools import manifest_tool

    def manifest(*argv) -> int:
        p = argparse.ArgumentParser()
        manifest_tool.add_arguments(p)
        return manifest_tool.run(p.parse_args([str(a) for a in argv]))

    assert cli("frames", shared_assets / "images/bdd100k", "-o", tmp_path / "bdd.jsonl") == 0
    listing = tmp_path / "held.yaml"
    listing.write_text("night: [bdd100k_yolop_3c0e7240-96e390d2.jpg, hybridnets_demo_3.jpg]\n"
                       "tunnel: ['bdd100k_twinlitenet_cb59*.jpg']\n")
    assert manifest("split", tmp_path / "bdd.jsonl", "--list", listing, "-o", tmp_path / "train.jsonl",
                    "--held-out", tmp_path / "held.jsonl") == 0
    held = read_manifest(tmp_path / "held.jsonl")
    assert sorted((s.image.name, s.extra["condition"]) for s in held) == [
        ("bdd100k_twinlitenet_cb5903ec-ab4d55f9.jpg", "tunnel"), ("bdd100k_yolop_3c0e7240-96e390d2.jpg", "night"),
        ("hybridnets_demo_3.jpg", "night")]
    assert all(s.extra["held_out"] == "held.yaml" for s in held)
    train = read_manifest(tmp_path / "train.jsonl")
    assert len(train) == 11 and not any("held_out" in s.extra for s in train)
    listing.write_text("night: [no_such_frame.jpg]\n")  # a typo must not silently train on a held-out frame
    capsys.readouterr()
    assert manifest("split", tmp_path / "bdd.jsonl", "--list", listing, "-o", tmp_path / "t.jsonl",
                    "--held-out", tmp_path / "h.jsonl") == 2
    assert "no_such_frame.jpg" in capsys.readouterr().err


# --- BDD100K (fixtures in the official formats) -------------------------------------------------------------------

BDD_A = "bdd100k_yolop_0ace96c3-48481887.jpg"
BDD_B = "bdd100k_yolop_3c0e7240-96e390d2.jpg"


def _box(x1, y1, x2, y2):
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


@pytest.fixture
def bdd_det20(tmp_path):
    """Fixture: a det_20 JSON (Scalabel) for two real BDD frames and one frame whose image is not there."""
    frames = [
        {"name": BDD_A, "labels": [
            {"id": "1", "category": "car", "box2d": _box(100.5, 300.0, 220.0, 380.25)},
            {"id": "2", "category": "bus", "box2d": _box(500, 250, 700, 420)},
            {"id": "3", "category": "rider", "box2d": _box(800, 330, 830, 400)},
            {"id": "4", "category": "bicycle", "box2d": _box(795, 360, 835, 410)},
            {"id": "5", "category": "traffic light", "box2d": _box(600, 100, 610, 130)},
            {"id": "6", "category": "pedestrian", "box2d": _box(900, 320, 920, 380)},
        ]},
        {"name": BDD_B, "labels": []},
        {"name": "not-in-the-images-folder.jpg", "labels": [{"category": "car", "box2d": _box(1, 2, 3, 4)}]},
    ]
    path = tmp_path / "det_20_fixture.json"
    path.write_text(json.dumps(frames))
    return path


@pytest.fixture
def bdd_drivable(tmp_path):
    """Fixture: 2020 drivable id masks (0 direct, 1 alternative, 2 background) for the two frames."""
    folder = tmp_path / "drivable_masks_fixture"
    folder.mkdir()
    mask = np.full((720, 1280), 2, np.uint8)
    mask[500:, 400:900] = 0
    mask[500:, 900:1200] = 1
    for name in (BDD_A, BDD_B):
        cv2.imwrite(str(folder / f"{Path(name).stem}.png"), mask)
    return folder


def test_bdd100k_round_trip(shared_assets, bdd_det20, bdd_drivable, tmp_path, capsys):
    out = tmp_path / "bdd.jsonl"
    rc = cli("bdd100k", bdd_det20, "--images", shared_assets / "images/bdd100k", "--drivable", bdd_drivable,
             "-o", out)
    assert rc == 0
    samples = {s.image.name: s for s in read_manifest(out)}
    assert set(samples) == {BDD_A, BDD_B}  # the frame without an image is skipped
    a, b = samples[BDD_A], samples[BDD_B]
    assert a.size == b.size == (1280, 720) and a.source == "bdd100k"
    assert a.labels["detections"]["boxes"] == [
        [100.5, 300.0, 220.0, 380.25, "vehicle"], [500, 250, 700, 420, "vehicle"], [800, 330, 830, 400, "cyclist"],
        [795, 360, 835, 410, "ignore"], [900, 320, 920, 380, "pedestrian"]]
    assert b.labels["detections"] == {"boxes": []}  # labelled, and nothing in it
    drivable = read_segmentation(b.labels["drivable_area"])
    assert drivable[600, 500] == 1 and drivable[600, 1000] == 1  # direct and alternative
    assert drivable[100, 100] == 0 and drivable[600, 1250] == 0
    out = capsys.readouterr().out
    assert "detections          2 labelled: 1 cyclist, 1 ignore, 1 pedestrian, 2 vehicle" in out
    assert "drivable_area       2 labelled" in out
    assert Path(a.labels["drivable_area"]["file"]).parent == bdd_drivable  # the mask itself, not a copy


def test_bdd100k_reads_the_2018_per_image_json(shared_assets, tmp_path):
    """Fixture: labels/100k/train/<name>.json of the 2018 release ({"name", "frames": [{"objects"}]})."""
    folder = tmp_path / "bdd2018_fixture"
    folder.mkdir()
    objects = [{"category": "car", "box2d": _box(10, 20, 30, 40)}, {"category": "person", "box2d": _box(5, 6, 7, 8)},
               {"category": "motor", "box2d": _box(1, 1, 9, 9)}, {"category": "lane", "poly2d": [[0, 0], [1, 1]]}]
    (folder / "a.json").write_text(json.dumps({"name": Path(BDD_A).stem, "frames": [{"objects": objects}]}))
    samples = importers.import_bdd100k(shared_assets / "images/bdd100k", detections=folder)
    assert [s.image.name for s in samples] == [BDD_A]
    assert samples[0].labels == {"detections": {"boxes": [[10.0, 20.0, 30.0, 40.0, "vehicle"],
                                                          [5.0, 6.0, 7.0, 8.0, "pedestrian"],
                                                          [1.0, 1.0, 9.0, 9.0, "ignore"]]}}


def test_bdd100k_rejects_colour_maps(shared_assets, tmp_path, capsys):
    folder = tmp_path / "colormaps_fixture"
    folder.mkdir()
    cv2.imwrite(str(folder / f"{Path(BDD_A).stem}.png"), np.zeros((720, 1280, 3), np.uint8))
    assert cli("bdd100k", "--images", shared_assets / "images/bdd100k", "--drivable", folder,
               "-o", tmp_path / "x.jsonl") == 2
    assert "not colormaps/" in capsys.readouterr().err


# --- frames: folder, video, bag -----------------------------------------------------------------------------------


def test_image_size_reads_the_headers(shared_assets):
    files = [*(shared_assets / "images/bdd100k").glob("*.jpg"), *(shared_assets / "kitti/image_2").glob("*.png"),
             *(shared_assets / "udacity/test_images").glob("*.jpg")]
    for f in files:
        h, w = cv2.imread(str(f)).shape[:2]
        assert frames.image_size(f) == (w, h), f


def test_frames_from_a_folder_scale_the_intrinsics(shared_assets, tmp_path):
    camera = frames.read_intrinsics_json(shared_assets / "udacity/camera_intrinsics.json")
    samples = importers.import_image_folder(shared_assets / "udacity/test_images", intrinsics=camera)
    assert len(samples) == 14 and all(not s.labels for s in samples)
    by_size = {s.size: s.intrinsics for s in samples}
    assert set(by_size) == {(960, 540), (1280, 720)}
    assert by_size[(1280, 720)] == (camera.fx, camera.fy, camera.cx, camera.cy)
    fx, fy, cx, cy = by_size[(1280, 720)]  # pixel centres scale: c -> (c + 0.5) * s - 0.5 (core/geometry.py)
    np.testing.assert_allclose(by_size[(960, 540)], [fx * 0.75, fy * 0.75, (cx + 0.5) * 0.75 - 0.5,
                                                     (cy + 0.5) * 0.75 - 0.5])
    every = importers.import_image_folder(shared_assets / "udacity/stills", every=10, max_frames=4)
    assert [s.image.name for s in every] == [f"project_video_{n:04d}.jpg" for n in (0, 250, 500, 750)]
    for name in ("frame_10.png", "frame_9.png", "frame_100.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((4, 6), np.uint8))
    assert [s.image.name for s in importers.import_image_folder(tmp_path)] == [
        "frame_9.png", "frame_10.png", "frame_100.png"]  # numbers in names sort as numbers


def test_frames_from_a_video(shared_assets, tmp_path, capsys):
    video = shared_assets / "udacity/videos/test_video.mp4"
    out = tmp_path / "data" / "video.jsonl"
    assert cli("frames", video, "--every", "10", "-o", out) == 0
    assert "wrote 4 samples" in capsys.readouterr().out
    samples = read_manifest(out)
    assert [s.extra["frame"] for s in samples] == [0, 10, 20, 30]
    # The frames lie beside the manifest, so the manifest refers to them relatively.
    assert json.loads(out.read_text().splitlines()[0])["image"] == "test_video_frames/000000.jpg"
    cap = cv2.VideoCapture(str(video))
    for _ in range(21):
        ok, frame = cap.read()
    cap.release()
    written = cv2.imread(str(samples[2].image))
    assert ok and samples[2].size == (1280, 720) and written.shape == frame.shape
    assert np.abs(written.astype(int) - frame).mean() < 2.0  # JPEG q95


BAG_K = [500.0, 0.0, 160.0, 0.0, 505.0, 90.0, 0.0, 0.0, 1.0]


def _write_bag(path: Path, storage: str, frames: list[np.ndarray]) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    t = ts.types
    image_t, info_t, jpeg_t = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/CompressedImage"
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {topic: w.add_connection(topic, msgtype, typestore=ts) for topic, msgtype in [
            ("/cam/image_raw", image_t), ("/cam/image_raw/compressed", jpeg_t), ("/cam/camera_info", info_t),
            ("/other/camera_info", info_t), ("/cam/depth", image_t), ("/bayer/image_raw", image_t)]}
        for i, rgb in enumerate(frames):
            stamp = 1_700_000_000 + i
            header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=stamp, nanosec=5),
                                              frame_id="cam")
            h, w_ = rgb.shape[:2]
            msgs = {
                "/cam/image_raw": t[image_t](header=header, height=h, width=w_, encoding="rgb8", is_bigendian=0,
                                             step=w_ * 3, data=rgb.reshape(-1)),
                "/cam/image_raw/compressed": t[jpeg_t](header=header, format="jpeg", data=np.frombuffer(
                    cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes(), np.uint8)),
                "/cam/camera_info": _camera_info(t, header, w_, h, BAG_K),
                "/other/camera_info": _camera_info(t, header, w_, h, [9.0, 0, 1, 0, 9, 1, 0, 0, 1]),
                "/cam/depth": t[image_t](header=header, height=h, width=w_, encoding="16UC1", is_bigendian=0,
                                         step=w_ * 2, data=np.zeros(h * w_ * 2, np.uint8)),
                "/bayer/image_raw": t[image_t](header=header, height=h, width=w_, encoding="bayer_rggb8",
                                               is_bigendian=0, step=w_, data=_rggb(rgb).reshape(-1)),
            }
            for topic, msg in msgs.items():
                w.write(conns[topic], stamp * 1_000_000_000, ts.serialize_cdr(msg, msg.__msgtype__))


def _rggb(rgb: np.ndarray) -> np.ndarray:
    """The raw sensor image of a Bayer RGGB camera seeing `rgb`: R G / G B in each 2x2 cell."""
    raw = rgb[:, :, 1].copy()
    raw[0::2, 0::2] = rgb[0::2, 0::2, 0]
    raw[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return raw


def _camera_info(t, header, width, height, k):
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return t["sensor_msgs/msg/CameraInfo"](
        header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5), k=np.array(k),
        r=np.eye(3).reshape(-1), p=np.zeros(12), binning_x=0, binning_y=0, roi=roi)


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def bag(request, shared_assets, tmp_path_factory):
    """A rosbag2 with 3 real frames (320x180 rgb8, raw and JPEG) and two cameras' CameraInfo."""
    stills = sorted((shared_assets / "udacity/stills").glob("*.jpg"))[:3]
    frames = [cv2.resize(cv2.imread(str(p)), (320, 180), interpolation=cv2.INTER_AREA)[:, :, ::-1].copy()
              for p in stills]
    path = tmp_path_factory.mktemp(f"bag_{request.param}") / "drive"
    _write_bag(path, request.param, frames)
    return path, frames


def test_frames_from_a_bag(bag, tmp_path):
    path, frames = bag
    samples = importers.import_bag(path, tmp_path / "frames", topic="/cam/image_raw")
    assert len(samples) == 3
    for i, (s, rgb) in enumerate(zip(samples, frames, strict=True)):
        assert s.image == tmp_path / f"frames/cam/image_raw/{i:06d}.jpg" and s.size == (320, 180)
        assert s.intrinsics == (500.0, 505.0, 160.0, 90.0)  # /cam's CameraInfo, not /other's
        assert s.extra["stamp_ns"] == (1_700_000_000 + i) * 1_000_000_000 + 5
        written = cv2.imread(str(s.image))[:, :, ::-1]  # back to RGB: a swapped channel order would show
        assert np.abs(written.astype(int) - rgb).mean() < 3.0


def test_compressed_frames_from_a_bag_are_the_jpeg_bytes(bag, tmp_path):
    path, _ = bag
    samples = importers.import_bag(path, tmp_path / "f", topic="/cam/image_raw/compressed", every=2)
    assert [s.image.name for s in samples] == ["000000.jpg", "000002.jpg"]
    assert samples[0].image.read_bytes()[:2] == b"\xff\xd8" and samples[0].intrinsics[0] == 500.0


def test_a_bayer_camera_imports_as_the_node_reads_it(bag, tmp_path):
    """Any encoding the node takes (core/images.py's one table) imports: a raw Bayer RGGB camera is demosaiced,
    and the frames look like the scene (not like a grey mosaic, nor with red and blue swapped)."""
    path, frames = bag
    samples = importers.import_bag(path, tmp_path / "f", topic="/bayer/image_raw")
    assert len(samples) == 3
    for s, rgb in zip(samples, frames, strict=True):
        got = cv2.imread(str(s.image))[:, :, ::-1].astype(np.float32)
        inner = (slice(4, -4), slice(4, -4))  # demosaicing guesses at the border
        err = np.abs(got[inner] - rgb[inner].astype(np.float32)).mean(axis=(0, 1))
        assert err.max() < 12, err  # per channel, in grey levels (JPEG + interpolation)


def test_bag_cli_errors_name_the_topics_and_the_encoding(bag, tmp_path, capsys):
    path, _ = bag
    assert cli("frames", path, "--topic", "/nope", "-o", tmp_path / "x.jsonl") == 2
    err = capsys.readouterr().err
    assert "no image topic /nope" in err and "/cam/image_raw (Image, 3 msgs)" in err
    assert "/cam/image_raw/compressed (CompressedImage, 3 msgs)" in err and "Traceback" not in err
    assert cli("frames", path, "-o", tmp_path / "x.jsonl") == 2
    assert "4 image topics; pick one with --topic" in capsys.readouterr().err
    assert cli("frames", path, "--topic", "/cam/depth", "-o", tmp_path / "x.jsonl") == 2
    assert "image encoding '16UC1' is not supported" in capsys.readouterr().err


# --- CLI errors ---------------------------------------------------------------------------------------------------


def test_cli_bad_input_exits_2_with_a_message(tmp_path, capsys):
    not_a_video = tmp_path / "clip.mp4"
    not_a_video.write_text("this is not a video")
    cases = [
        (["sim", tmp_path / "missing"], "sim dataset"),
        (["kitti", tmp_path], "KITTI image folder"),
        (["frames", not_a_video], "cannot open video"),
        (["frames", tmp_path / "missing.mp4"], "does not exist"),
        (["bdd100k"], "bdd100k needs --images"),
        (["kitti", tmp_path, "--intrinsics", "cam.json"], "--intrinsics applies to frames and bdd100k, not to kitti"),
    ]
    for argv, message in cases:
        assert cli(*argv, "-o", tmp_path / "out.jsonl") == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("hydranet import: ") and message in err, (argv, err)
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_refuses_a_split_that_leaves_nothing_to_train_on(shared_assets, tmp_path, capsys):
    video = shared_assets / "udacity/videos/test_video.mp4"
    assert cli("frames", video, "--every", "19", "--val-fraction", "0.5", "-o", tmp_path / "v.jsonl") == 2
    assert "leaves no episode to train on" in capsys.readouterr().err
