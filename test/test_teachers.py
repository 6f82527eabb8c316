"""Teachers for pseudo-labels (hydranet_ros.train.teachers) and `hydranet pseudo-label`, with the real models on
real frames from ../shared/assets; the box logic (decoders, cyclist merge, ignore band) also on hand-made numbers."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from hydranet_ros.tools import pseudo_label
from hydranet_ros.train import teachers as T
from hydranet_ros.train.manifest import read_manifest, read_segmentation

BDD_DAY = "images/bdd100k/bdd100k_yolop_0ace96c3-48481887.jpg"  # 1280x720, a street lined with parked cars
UDACITY_CARS = "udacity/test_images/test1.jpg"  # 1280x720 freeway, two cars ahead on the right
UDACITY_SMALL = "udacity/test_images/solidWhiteRight.jpg"  # 960x540
SMALL_SEG = (320, 192)  # TwinLiteNet at a quarter of its pixels: the same verdicts here, 5x faster


# --- fixtures: one session per teacher for the whole file ------------------------------------------------------


@pytest.fixture(scope="module")
def names(shared_assets: Path) -> list[str]:
    return T.load_names(T.default_asset("coco_names", shared_assets))


@pytest.fixture(scope="module")
def twinlitenet(shared_assets: Path) -> T.TwinLiteNet:
    return T.TwinLiteNet(T.default_asset("twinlitenet", shared_assets), size=SMALL_SEG)


@pytest.fixture(scope="module")
def detectors(shared_assets: Path, names: list[str]) -> dict[str, T.CocoDetector]:
    return {"picodet": T.PicoDetS(T.default_asset("picodet", shared_assets), names),
            "fastestdet": T.FastestDet(T.default_asset("fastestdet", shared_assets), names)}


def frame(assets: Path, rel: str) -> np.ndarray:
    rgb = T.read_rgb(assets / rel)
    assert rgb is not None, rel
    return rgb


def dets(boxes, scores, classes) -> T.Detections:
    return T.Detections(np.array(boxes, np.float32), scores, classes)


# --- segmentation --------------------------------------------------------------------------------------------


def test_twinlitenet_finds_the_road_below_and_the_lane_lines(shared_assets, twinlitenet):
    rgb = frame(shared_assets, BDD_DAY)
    probs = twinlitenet(rgb)
    assert set(probs) == {"drivable", "lane"}
    for p in probs.values():
        assert p.shape == rgb.shape[:2] and p.dtype == np.float32
        assert p.min() >= 0.0 and p.max() <= 1.0
    drivable = T.probability_to_label(probs["drivable"])
    h = drivable.shape[0]
    top, bottom = (drivable[: h // 3] == 1).mean(), (drivable[2 * h // 3:] == 1).mean()
    assert bottom > 0.1 and bottom > 10 * top, (top, bottom)
    lane = T.probability_to_label(probs["lane"])
    assert (lane == 1).mean() > 0.002  # the double yellow line on the left
    assert (lane[h // 2:] == 1).sum() > 0.9 * (lane == 1).sum()  # lines are on the road, not in the trees


def test_twinlitenet_answers_in_the_source_pixels_of_any_size(shared_assets, twinlitenet):
    rgb = frame(shared_assets, UDACITY_SMALL)  # 960x540, another aspect of input than 320x192
    probs = twinlitenet(rgb[:, :900])
    assert probs["drivable"].shape == (540, 900) and probs["lane"].shape == (540, 900)
    assert twinlitenet.ms_per_image > 0


def test_twinlitenet_runs_at_the_level_it_is_fastest_at_with_the_same_answers(shared_assets, twinlitenet,
                                                                            monkeypatch):
    # It runs at ONNX Runtime's "extended" graph optimisation (1.7x faster than "all" for its dilated convolutions,
    # bench/README.md); the probabilities must be the ones "all" gives.
    assert twinlitenet.optimization == "extended"
    rgb = frame(shared_assets, BDD_DAY)
    monkeypatch.setattr(T.TwinLiteNet, "optimization", "all")
    at_all = T.TwinLiteNet(T.default_asset("twinlitenet", shared_assets), size=SMALL_SEG)
    for task, p in twinlitenet(rgb).items():
        np.testing.assert_allclose(p, at_all(rgb)[task], atol=1e-4)


def test_probability_to_label_marks_the_unsure_band_ignore():
    p = np.array([[0.0, 0.4, 0.41, 0.5, 0.59, 0.6, 1.0]], np.float32)
    assert T.probability_to_label(p, hi=0.6, lo=0.4).tolist() == [[0, 0, 255, 255, 255, 1, 1]]
    assert T.probability_to_label(p, hi=0.5, lo=0.5).tolist() == [[0, 0, 0, 1, 1, 1, 1]]  # no band: argmax
    with pytest.raises(ValueError):
        T.probability_to_label(p, hi=0.4, lo=0.6)


# --- detectors on a real frame ---------------------------------------------------------------------------------


@pytest.mark.parametrize("teacher", ["picodet", "fastestdet"])
def test_detector_finds_the_cars_ahead(shared_assets, detectors, teacher):
    rgb = frame(shared_assets, UDACITY_CARS)
    h, w = rgb.shape[:2]
    d = detectors[teacher](rgb)
    assert len(d) and (d.scores >= detectors[teacher].min_score).all()
    b = d.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    cars = d.take((d.classes == "car") & (d.scores >= 0.5))
    cy = (cars.boxes[:, 1] + cars.boxes[:, 3]) / 2
    cx = (cars.boxes[:, 0] + cars.boxes[:, 2]) / 2
    # The black and the white car ahead on the right, on the road: below the horizon, above the bonnet.
    ahead = (cx > 0.6 * w) & (cy > 0.5 * h) & (cy < 0.8 * h)
    assert ahead.sum() >= 2, cars


def test_tiles_keep_the_whole_frames_cars_and_find_more_people_on_kitti(shared_assets, names, detectors):
    """Square crops across a wide frame (CocoDetector tiles): the whole frame's boxes survive the merge, and on the
    kitti101 train frames with the most pedestrians the crops find at least as many labelled people, some of them."""
    from hydranet_ros.train.importers import import_kitti

    tiled = T.PicoDetS(T.default_asset("picodet", shared_assets), names, tiles=4)
    rgb = frame(shared_assets, UDACITY_CARS)
    whole, merged = detectors["picodet"](rgb), tiled(rgb)
    cars = whole.boxes[(whole.classes == "car") & (whole.scores >= 0.5)]
    merged_cars = merged.boxes[merged.classes == "car"]
    assert len(cars) >= 2 and (T.box_iou(cars, merged_cars).max(axis=1) >= 0.5).all()
    h, w = rgb.shape[:2]
    assert (merged.boxes >= 0).all() and (merged.boxes[:, [0, 2]] <= w).all() and (merged.boxes[:, [1, 3]] <= h).all()

    def people(s) -> np.ndarray:
        return np.array([b[:4] for b in s.labels["detections"]["boxes"] if b[4] == "pedestrian" and b[3] - b[1] >= 25],
                        np.float32).reshape(-1, 4)

    samples = sorted(import_kitti(shared_assets / "kitti101", split="train"), key=lambda s: -len(people(s)))[:5]
    found = {}
    for name, det in (("whole", detectors["picodet"]), ("tiled", tiled)):
        hits = 0
        for s in samples:
            d = det(T.read_rgb(s.image))
            boxes = d.boxes[(d.classes == "person") & (d.scores >= 0.3)]
            if len(boxes):
                hits += int((T.box_iou(people(s), boxes).max(axis=1) >= 0.5).sum())
        found[name] = hits
    assert sum(len(people(s)) for s in samples) >= 10
    print("labelled people found in 5 kitti101 train frames:", found)
    assert found["tiled"] >= found["whole"] and found["tiled"] > 0, found
    with pytest.raises(ValueError, match="tiles"):
        T.PicoDetS(T.default_asset("picodet", shared_assets), names, tiles=1)


def test_the_two_detectors_agree_on_the_cars(shared_assets, detectors):
    rgb = frame(shared_assets, UDACITY_CARS)
    a, b = (detectors[k](rgb) for k in ("picodet", "fastestdet"))
    cars_a = a.boxes[(a.classes == "car") & (a.scores >= 0.5)]
    cars_b = b.boxes[(b.classes == "car") & (b.scores >= 0.5)]
    iou = T.box_iou(cars_a, cars_b)
    assert iou.size and (iou.max(axis=1) > 0.5).sum() >= 2, iou


def test_road_detector_maps_to_road_classes_and_drops_the_bonnet(shared_assets, detectors):
    rgb = frame(shared_assets, BDD_DAY)
    both = T.RoadDetector([detectors["picodet"], detectors["fastestdet"]])
    d = both(rgb)
    assert set(d.classes) <= {"vehicle", "pedestrian", "cyclist"}
    assert (d.classes == "vehicle").sum() >= 6  # a street of parked cars
    h, w = rgb.shape[:2]
    # Both teachers call the camera car's bonnet a car; raw, they do.
    raw = T.RoadDetector([detectors["picodet"]], hood_width=None)(rgb)
    assert any((b[2] - b[0]) > 0.75 * w and b[3] > 0.97 * h for b in raw.boxes)
    assert not any((b[2] - b[0]) > 0.75 * w and b[3] > 0.97 * h for b in d.boxes)


# --- decoders on hand-made outputs (the formulas of the reference code) -----------------------------------------


def test_fastestdet_decode_cell_offset_and_score():
    grid = np.zeros((85, 22, 22), np.float32)
    grid[0] = 0.01  # objectness is already a sigmoid in the graph, classes a softmax
    row, col = 10, 5
    grid[0, row, col] = 0.81
    grid[5 + 2, row, col] = 0.16  # "car"
    grid[1, row, col], grid[2, row, col] = np.arctanh(0.5), np.arctanh(-0.25)
    grid[3, row, col], grid[4, row, col] = 0.0, np.log(0.25 / 0.75)  # sigmoid -> 0.5 and 0.25 of the input
    boxes, scores, ids = T.decode_fastestdet(grid, min_score=0.3)
    assert ids.tolist() == [2]
    assert scores[0] == pytest.approx(0.81 ** 0.6 * 0.16 ** 0.4, rel=1e-5)
    cx, cy = (col + 0.5) / 22, (row - 0.25) / 22  # cell corner + tanh offset, no half-cell shift
    np.testing.assert_allclose(boxes[0], [cx - 0.25, cy - 0.125, cx + 0.25, cy + 0.125], atol=1e-6)


def test_picodet_outputs_told_apart_by_shape_and_decoded_in_stride_order():
    anchors = {8: 52 * 52, 16: 26 * 26, 32: 13 * 13, 64: 7 * 7}
    scores = {s: np.zeros((1, n, 80), np.float32) for s, n in anchors.items()}
    dists = {s: np.zeros((1, n, 32), np.float32) for s, n in anchors.items()}
    row, col = 3, 4
    scores[16][0, row * 26 + col, 7] = 0.9  # a "truck" at stride 16
    d = np.zeros((4, 8), np.float32)
    d[:, 2] = 20.0  # every side: bin 2 -> 2 strides
    d[1] = 0.0
    d[1, 1] = d[1, 3] = 20.0  # top: half bin 1, half bin 3 -> still 2 strides in expectation
    dists[16][0, row * 26 + col] = d.ravel()
    shuffled = [dists[32], scores[64], scores[8], dists[8], scores[16], dists[64], dists[16], scores[32]]
    s, dl = T.split_picodet_outputs(shuffled, 80, 7)
    boxes, sc, ids = T.decode_picodet(s, dl, 416, (8, 16, 32, 64), 7, min_score=0.5)
    assert ids.tolist() == [7] and sc.tolist() == pytest.approx([0.9])
    cx, cy = col * 16 + 7.5, row * 16 + 7.5
    np.testing.assert_allclose(boxes[0], [cx - 32, cy - 32, cx + 32, cy + 32], atol=1e-3)


# --- COCO -> road classes, the cyclist merge, the ignore band ---------------------------------------------------


def test_rider_and_bike_become_one_cyclist_a_passer_by_stays_a_pedestrian():
    d = dets([[100, 50, 140, 150],    # rider: lower half [100, 100, 140, 150] inside the bike
              [90, 100, 150, 160],    # their bicycle
              [300, 50, 340, 150],    # pedestrian beside a parked bike: their lower half is not on it
              [345, 100, 405, 160],   # the parked bike
              [500, 80, 600, 160],    # a car
              [700, 80, 720, 100],    # a dog: not a road class
              [800, 50, 840, 150],    # pedestrian crossing in front of a bike further away: the bike is
              [790, 30, 850, 100]],   # behind their upper half, not under their legs
             [0.7, 0.6, 0.8, 0.55, 0.9, 0.9, 0.8, 0.6],
             ["person", "bicycle", "person", "motorbike", "car", "dog", "person", "bicycle"])
    out = T.ClassMapping().apply(d)
    got = sorted((c, [round(float(v)) for v in b], round(float(s), 2)) for b, s, c in
                 zip(out.boxes, out.scores, out.classes, strict=True))
    assert got == [("cyclist", [90, 50, 150, 160], 0.7),  # the union, the higher score
                   ("cyclist", [345, 100, 405, 160], 0.55),
                   ("cyclist", [790, 30, 850, 100], 0.6),
                   ("pedestrian", [300, 50, 340, 150], 0.8),
                   ("pedestrian", [800, 50, 840, 150], 0.8),
                   ("vehicle", [500, 80, 600, 160], 0.9)]
    # Off: each person a pedestrian, each bike a cyclist, as the classes map them.
    off = T.ClassMapping(rider_cover=0).apply(d)
    assert sorted(off.classes.tolist()) == ["cyclist"] * 3 + ["pedestrian"] * 3 + ["vehicle"]


def test_a_rider_seen_from_behind_merges_though_their_iou_is_low():
    rider, bike = [100, 50, 140, 150], [108, 100, 132, 155]  # the bike narrower than the rider, from the hips down
    assert T.box_iou(np.array(rider), np.array(bike))[0, 0] < 0.3
    out = T.ClassMapping().apply(dets([rider, bike], [0.8, 0.4], ["person", "bicycle"]))
    assert out.classes.tolist() == ["cyclist"] and out.boxes.tolist() == [[100, 50, 140, 155]]


def test_two_people_on_one_bike_the_surer_one_rides():
    d = dets([[100, 50, 140, 150], [102, 52, 142, 152], [90, 100, 150, 160]], [0.6, 0.9, 0.5],
             ["person", "person", "bicycle"])
    out = T.ClassMapping().apply(d)
    assert sorted(out.classes.tolist()) == ["cyclist", "pedestrian"]
    assert out.scores[out.classes == "cyclist"].tolist() == pytest.approx([0.9])
    assert out.boxes[out.classes == "pedestrian"].tolist() == [[100, 50, 140, 150]]


def test_class_map_parses_and_rejects_nonsense():
    m = T.ClassMapping.parse("car=vehicle, truck=vehicle")
    out = m.apply(dets([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.9], ["truck", "person"]))
    assert out.classes.tolist() == ["vehicle"]
    for bad in ("", "car", "car=", "car=vehicle=x"):
        with pytest.raises(ValueError):
            T.ClassMapping.parse(bad)


def test_label_boxes_ignore_band():
    d = dets([[0, 0, 100, 100],       # sure: a label
              [300, 0, 400, 100],     # unsure: an ignore region
              [500, 0, 600, 100],     # below the band: background
              [5, 5, 100, 105],       # unsure, but a second guess at the sure box: dropped
              [700, 0, 800, 100]],    # exactly the threshold: a label
             [0.91234, 0.4, 0.29, 0.45, 0.5], ["vehicle", "pedestrian", "vehicle", "cyclist", "cyclist"])
    assert T.label_boxes(d, threshold=0.5, low_threshold=0.3) == [
        [0.0, 0.0, 100.0, 100.0, "vehicle", 0.912],
        [700.0, 0.0, 800.0, 100.0, "cyclist", 0.5],
        [300.0, 0.0, 400.0, 100.0, "ignore", 0.4],
    ]
    assert T.label_boxes(d, threshold=0.5, low_threshold=0.5) == T.label_boxes(d.take(d.scores >= 0.5))
    assert T.label_boxes(T.Detections()) == []
    with pytest.raises(ValueError):
        T.label_boxes(d, threshold=0.3, low_threshold=0.5)


def test_label_boxes_per_class_bands():
    d = dets([[0, 0, 100, 100], [300, 0, 400, 100], [500, 0, 600, 100], [700, 0, 800, 100]],
             [0.52, 0.52, 0.9, 0.3], ["vehicle", "pedestrian", "cyclist", "pedestrian"])
    # Measured bands: people need 0.55 to be a label (0.35 to be don't-care); no cyclist box is ever trusted.
    bands = {"pedestrian": (0.55, 0.35), "cyclist": (1.0, 0.25)}
    assert T.label_boxes(d, 0.5, 0.25, per_class=bands) == [
        [500.0, 0.0, 600.0, 100.0, "ignore", 0.9],
        [0.0, 0.0, 100.0, 100.0, "vehicle", 0.52],
        [300.0, 0.0, 400.0, 100.0, "ignore", 0.52],
    ]
    with pytest.raises(ValueError, match="for pedestrian"):
        T.label_boxes(d, per_class={"pedestrian": (0.3, 0.5)})


def test_class_nms_is_per_class_and_ego_hood_is_dropped():
    d = dets([[0, 0, 100, 100], [2, 2, 100, 100], [0, 0, 100, 100],
              [0, 520, 1270, 720],     # the bonnet: as wide as the frame, along its bottom
              [900, 300, 1280, 719],   # a car close on the right, cut by the bottom edge: kept
              [260, 650, 760, 718],    # reflections on the bonnet at night: flat, along the bottom
              [0, 400, 1280, 600]],    # wide but not at the bottom (a truck crossing): kept
             [0.9, 0.8, 0.7, 0.6, 0.6, 0.6, 0.6], ["vehicle", "vehicle", "pedestrian"] + ["vehicle"] * 4)
    kept = T.class_nms(d, 0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.6, 0.6, 0.6, 0.6])
    no_hood = T.drop_ego_hood(kept, 1280, 720)
    assert no_hood.boxes.tolist() == [[0, 0, 100, 100], [0, 0, 100, 100], [900, 300, 1280, 719], [0, 400, 1280, 600]]


# --- files, timing ---------------------------------------------------------------------------------------------


def test_assets_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(T.ASSETS_ENV, raising=False)
    assert T.assets_dir() == T.REPO_ROOT.parent / "shared" / "assets"
    monkeypatch.setenv(T.ASSETS_ENV, str(tmp_path))
    assert T.default_asset("picodet") == tmp_path / "teachers/picodet_s/picodet_s_416_coco_clean.onnx"
    with pytest.raises(T.TeacherFileError, match=f"not found: {tmp_path}.*(give it with --picodet-model)"):
        T.require_file(T.default_asset("picodet"), "give it with --picodet-model")


def test_time_teachers_gives_ms_per_image(shared_assets, twinlitenet, detectors):
    rgb = frame(shared_assets, UDACITY_SMALL)
    ms = T.time_teachers({"twinlitenet": twinlitenet, **detectors}, [rgb])
    assert set(ms) == {"twinlitenet", "picodet", "fastestdet"}
    assert all(0 < v < 5000 for v in ms.values()), ms


def test_tool_defaults_are_the_teachers_defaults():
    teachers = {"threshold": T.DET_THRESHOLD, "low_threshold": T.DET_LOW_THRESHOLD, "nms_iou": T.NMS_IOU,
                "seg_hi": T.SEG_HI, "seg_lo": T.SEG_LO, "rider_cover": T.ClassMapping().rider_cover}
    assert teachers == pseudo_label.DEFAULTS


# --- the command, end to end -----------------------------------------------------------------------------------


def run_tool(*argv: str) -> int:
    p = argparse.ArgumentParser()
    pseudo_label.add_arguments(p)
    return pseudo_label.run(p.parse_args([str(a) for a in argv]))


@pytest.fixture
def raw_manifest(shared_assets: Path, tmp_path: Path) -> Path:
    """Three real frames, two of them called frame.jpg in different folders; the second already has boxes."""
    for sub, rel in (("a", BDD_DAY), ("b", UDACITY_CARS)):
        (tmp_path / "raw" / sub).mkdir(parents=True)
        shutil.copy(shared_assets / rel, tmp_path / "raw" / sub / "frame.jpg")
    lines = [{"image": "a/frame.jpg", "source": "bdd100k"},
             {"image": "b/frame.jpg", "labels": {"detections": {"boxes": [[1, 2, 3, 4, "vehicle"]]}}},
             {"image": str(shared_assets / UDACITY_SMALL), "size": [960, 540]}]
    path = tmp_path / "raw" / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_pseudo_label_end_to_end(raw_manifest, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_tool(raw_manifest, "-o", out, "--seg-size", "320x192") == 0
    summary = capsys.readouterr().out
    assert "3 frames" in summary and "vehicle" in summary and "ms per frame" in summary

    samples = read_manifest(out / "manifest.jsonl")
    assert [s.image.parent.name for s in samples[:2]] == ["a", "b"]
    for s in samples:
        assert set(s.labels) == {"drivable_area", "lane_lines", "detections"}
        w, h = s.size
        for task in ("drivable_area", "lane_lines"):
            png = cv2.imread(str(s.labels[task]["file"]), cv2.IMREAD_UNCHANGED)
            assert png.shape == (h, w) and png.dtype == np.uint8
            assert set(np.unique(png)) <= {0, 1, 255}
            assert Path(s.labels[task]["file"]).parent == out / task
        assert cv2.imread(str(s.image)).shape[:2] == (h, w)
    # Same file name, different folders: different PNGs.
    assert samples[0].labels["drivable_area"]["file"] != samples[1].labels["drivable_area"]["file"]
    assert (read_segmentation(samples[0].labels["drivable_area"]) == 1).mean() > 0.05
    # New boxes on the street of cars, the existing boxes kept as they were.
    new = samples[0].labels["detections"]["boxes"]
    assert sum(b[4] == "vehicle" for b in new) >= 6
    assert all(len(b) == 6 and b[5] == round(b[5], 3) for b in new)
    assert samples[1].labels["detections"] == {"boxes": [[1, 2, 3, 4, "vehicle"]]}
    assert samples[0].source == "bdd100k"
    record = samples[0].extra["pseudo_labels"]
    assert record["drivable_area"]["teacher"] == "twinlitenet" and record["drivable_area"]["hi"] == 0.6
    assert [t["teacher"] for t in record["detections"]["teachers"]] == ["picodet"]
    assert record["detections"]["threshold"] == 0.5
    assert "detections" not in samples[1].extra["pseudo_labels"]

    # --overwrite replaces the existing boxes; --tasks limits what runs.
    again = tmp_path / "again"
    assert run_tool(out / "manifest.jsonl", "-o", again, "--tasks", "detections", "--overwrite",
                    "--detector", "fastestdet") == 0
    redone = read_manifest(again / "manifest.jsonl")
    assert redone[1].labels["detections"]["boxes"] != [[1, 2, 3, 4, "vehicle"]]
    assert [t["teacher"] for t in redone[1].extra["pseudo_labels"]["detections"]["teachers"]] == ["fastestdet"]
    assert redone[0].labels["drivable_area"] == samples[0].labels["drivable_area"]  # untouched

    # Per-class bands: a vehicle threshold of 1 turns every car into a don't-care region; recorded per frame.
    banded = tmp_path / "banded"
    assert run_tool(out / "manifest.jsonl", "-o", banded, "--tasks", "detections", "--overwrite",
                    "--class-thresholds", "vehicle=1:0.3") == 0
    boxes = read_manifest(banded / "manifest.jsonl")[0].labels["detections"]["boxes"]
    assert boxes and all(b[4] == "ignore" for b in boxes)
    assert len(boxes) >= sum(b[4] == "vehicle" for b in new)
    assert read_manifest(banded / "manifest.jsonl")[0].extra["pseudo_labels"]["detections"]["class_thresholds"] == {
        "vehicle": [1.0, 0.3]}


def test_pseudo_label_missing_teacher_is_a_clear_error(raw_manifest, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nope.onnx"
    assert run_tool(raw_manifest, "-o", tmp_path / "out", "--picodet-model", missing) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--picodet-model" in err and "Traceback" not in err
    monkeypatch.setenv(T.ASSETS_ENV, str(tmp_path))
    assert run_tool(raw_manifest, "-o", tmp_path / "out", "--tasks", "lane_lines") == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "weights/twinlitenet_da_ll_dynamic.onnx") in err and "--twinlitenet-model" in err
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_pseudo_label_rejects_bad_options(raw_manifest, tmp_path, capsys):
    for argv in (["--threshold", "0.2"], ["--seg-lo", "0.7"], ["--tasks", "depth"], ["--seg-size", "321x180"],
                 ["--class-thresholds", "pedestrian=0.3:0.5"], ["--class-thresholds", "pedestrain=0.5:0.3"],
                 ["--tiles", "1"]):
        assert run_tool(raw_manifest, "-o", tmp_path / "out", *argv) == 2, argv
        assert "hydranet pseudo-label:" in capsys.readouterr().err


def test_pseudo_label_skips_unreadable_frames_and_says_so(shared_assets, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": "missing.jpg"}) + "\n"
                        + json.dumps({"image": str(shared_assets / UDACITY_SMALL), "size": [640, 480]}) + "\n")
    assert run_tool(manifest, "-o", tmp_path / "out", "--tasks", "lane_lines", "--seg-size", "320x192") == 1
    err = capsys.readouterr().err
    assert "missing.jpg" in err and "960x540" in err
    assert [s.labels for s in read_manifest(tmp_path / "out" / "manifest.jsonl")] == [{}, {}]
