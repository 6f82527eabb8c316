"""Training samples: augmentations keep every label consistent with the pixels (real synthetic and KITTI frames)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import REPO, SIM_K, sim_sample
from hydranet_ros.model.spec import load_spec
from hydranet_ros.train.augment import Augment, Geometry, transform_boxes
from hydranet_ros.train.data import MultiTaskDataset, collate
from hydranet_ros.train.manifest import ManifestError, Sample, read_manifest, write_manifest

SPEC = load_spec(REPO / "config" / "models" / "hydranet_effl0_road.yaml")
def test_geometry_maps_points_and_intrinsics_consistently() -> None:
    # A 3D point projects to the same pixel whether we project with the new intrinsics or move the old pixel.
    geo = Geometry(scale=0.6, dx=-31.5, dy=12.0, width=320, height=192, flip=True)
    k = (700.0, 690.0, 640.0, 360.0)
    x3, y3, z3 = 2.0, 0.7, 15.0
    u, v = k[0] * x3 / z3 + k[2], k[1] * y3 / z3 + k[3]
    fx, fy, cx, cy = geo.intrinsics(k)
    # Pixel-centre convention: continuous u maps to u*s+dx; mirrored centre index i -> W-1-i, i.e. x -> W-1-x
    # for centres, which equals the box rule W - x shifted by one pixel's width.
    u_moved = geo.width - 1 - (u * geo.scale + geo.dx)
    assert fx * (-x3) / z3 + cx == pytest.approx(u_moved, abs=1e-9)  # a mirrored camera sees x as -x
    assert fy * y3 / z3 + cy == pytest.approx(geo.points_y(np.array(v)), abs=1e-9)


def test_boxes_cut_by_the_crop_become_dont_care() -> None:
    geo = Geometry(scale=1.0, dx=-100.0, dy=0.0, width=200, height=100, flip=False)
    boxes = np.array([[120, 10, 160, 50, 0],    # inside
                      [90, 10, 130, 50, 1],     # 75 % inside: kept, clipped
                      [60, 10, 110, 50, 2],     # 20 % inside: don't care
                      [0, 0, 50, 50, 0]], np.float32)  # outside: gone
    out, ignore = transform_boxes(boxes, np.zeros((0, 4), np.float32), geo)
    np.testing.assert_allclose(out, [[20, 10, 60, 50, 0], [0, 10, 30, 50, 1]])
    np.testing.assert_allclose(ignore, [[0, 10, 10, 50]])


def test_augmented_sim_frame_keeps_labels_on_their_pixels(shared_assets) -> None:
    """Boxes still enclose vehicle pixels, lanes stay on the road, depth keeps metres through scale and flip."""
    sample = sim_sample(shared_assets, "000120")
    vehicle = dict(sample.labels["drivable_area"], map={"4": 1}, default=0)
    sample.labels["vehicle_mask"] = vehicle  # an extra "task" read through the same transform, below
    spec = SPEC
    ds = MultiTaskDataset([sample], spec, augment=Augment(scale=(0.6, 1.6), colour=0.3), crop=(320, 192), seed=3)
    from hydranet_ros.train.manifest import read_depth

    src_metres = np.maximum(read_depth(sample.labels["depth"]), 1e-3)
    ratios, inside, wrong = [], [], []
    torch.manual_seed(0)
    flips = set()
    for _ in range(12):
        item = ds[0]
        geo = item.geometry
        flips.add(geo.flip)
        assert item.image.shape == (192, 320, 3) and item.image.dtype == torch.uint8
        drivable = item.labels["drivable_area"].dense.numpy()
        lanes = item.labels["lane_lines"].dense.numpy()
        # Lane paint lies on the road: every lane pixel is drivable, and padding is ignored in both.
        assert np.all(drivable[lanes == 1] == 1)
        assert np.array_equal(lanes == 255, drivable == 255)
        # The vehicle map is not a head of the spec: warp it with the item's geometry to check the boxes.
        from hydranet_ros.train.manifest import read_segmentation

        vmask = geo.warp(read_segmentation(vehicle), nearest=True, fill=0)
        mirrored = vmask[:, ::-1]  # what a transform that forgot to flip the boxes would be checked against
        for x1, y1, x2, y2, _ in item.labels["detections"].boxes.numpy():
            rows, cols = slice(int(y1), int(np.ceil(y2))), slice(int(x1), int(np.ceil(x2)))
            inside.append(vmask[rows, cols].mean())
            wrong.append(mirrored[rows, cols].mean())
        # Canonical depth is metres * canonical_fx / fx': back in metres, each pixel holds the source pixel's depth.
        depth = item.labels["depth"].dense.numpy()
        fx = geo.intrinsics(SIM_K)[0]
        ys, xs = np.nonzero(depth > 0)
        pre_flip = geo.width - 1 - xs if geo.flip else xs
        sx = np.clip(np.round((pre_flip - geo.dx) / geo.scale).astype(int), 0, 639)
        sy = np.clip(np.round((ys - geo.dy) / geo.scale).astype(int), 0, 383)
        metres = depth[ys, xs] * fx / SIM_K[0]
        ratios.append(np.median(metres / src_metres[sy, sx]))
    assert flips == {True, False}, "every draw of a sample must get its own random transform"
    assert len(inside) > 10
    # Sim boxes are full (amodal) boxes, about half filled by their vehicle's visible pixels.
    assert np.median(inside) > 0.35, "transformed boxes no longer cover their vehicles"
    assert np.median(inside) > 2 * np.median(wrong)
    # Per pixel, within a pixel of resampling: the depth in metres is the source pixel's.
    np.testing.assert_allclose(ratios, 1.0, atol=0.02)


def test_kitti_depth_converts_to_the_canonical_camera(shared_assets) -> None:
    from hydranet_ros.train.manifest import read_depth

    kitti = shared_assets / "kitti"
    p2 = [float(v) for v in (kitti / "calib" / "000008.txt").read_text().splitlines()[2].split()[1:]]
    k = (p2[0], p2[5], p2[2], p2[6])
    sample = Sample(image=kitti / "image_2" / "000008.png", intrinsics=k,
                    labels={"depth": {"file": kitti / "sparse_depth" / "000008.png"}})
    item = MultiTaskDataset([sample], SPEC)[0]
    metres = read_depth(sample.labels["depth"])
    scale = min(640 / metres.shape[1], 384 / metres.shape[0])
    target = item.labels["depth"].dense.numpy()
    canonical = SPEC.head("depth").options["canonical_fx"]
    got = target[target > 0] * (k[0] * scale) / canonical
    cap = SPEC.head("depth").options["max_depth"] * (k[0] * scale) / canonical
    # Nearest resampling keeps LiDAR values (no blending); those beyond the head's range are clamped to the cap.
    src = metres[metres > 0]
    assert got.min() >= src.min() - 1e-3 and got.max() <= min(src.max(), cap) + 1e-3
    assert np.isin(np.round(got[got < cap * 0.999], 2), np.round(src, 2)).mean() > 0.99
    assert {t: label is not None for t, label in item.labels.items()} == {
        "drivable_area": False, "lane_lines": False, "depth": True, "detections": False}


def test_collate_fills_unlabelled_images_and_reports_presence(shared_assets) -> None:
    a = sim_sample(shared_assets, "000010")
    b = sim_sample(shared_assets, "000020", with_boxes=False)
    del b.labels["drivable_area"]
    ds = MultiTaskDataset([a, b], SPEC)
    batch = collate([ds[0], ds[1]])
    assert batch.tasks["drivable_area"].present.tolist() == [True, False]
    assert batch.tasks["detections"].present.tolist() == [True, False]
    assert int(batch.tasks["drivable_area"].dense[1].unique().item()) == 255
    assert batch.tasks["detections"].boxes[1].shape == (0, 5)
    assert batch.image.shape == (2, 384, 640, 3)


def test_depth_without_intrinsics_and_bad_class_ids_are_refused(shared_assets) -> None:
    s = sim_sample(shared_assets, "000010")
    s.intrinsics = None
    with pytest.raises(ManifestError, match="no intrinsics"):
        MultiTaskDataset([s], SPEC)
    s = sim_sample(shared_assets, "000010")
    s.labels["drivable_area"] = {"file": s.labels["drivable_area"]["file"]}  # raw ids 0..4 for a 2-class head
    with pytest.raises(ManifestError, match="add a 'map'"):
        MultiTaskDataset([s], SPEC)[0]


def test_manifest_round_trip_and_line_errors(tmp_path) -> None:
    img = REPO / "hydranet_ros" / "samples" / "project_video_0750.jpg"
    s = Sample(image=img, size=(1280, 720), intrinsics=(1158.8, 1154.1, 669.6, 388.1), source="udacity",
               labels={"detections": {"boxes": [[1, 2, 30, 40, "vehicle", 0.9]]}})
    write_manifest(tmp_path / "m.jsonl", [s])
    back = read_manifest(tmp_path / "m.jsonl")[0]
    assert back.image.resolve() == img.resolve() and back.labels == s.labels and back.intrinsics == s.intrinsics
    bad = '{"image": "a.jpg"}\n{"image": "b.jpg", "labels": {"d": {"boxes": [[5, 5, 1, 1, "x"]]}}}\n'
    (tmp_path / "bad.jsonl").write_text(bad)
    with pytest.raises(ManifestError, match=r"bad.jsonl:2: .*x2 < x1"):
        read_manifest(tmp_path / "bad.jsonl")


def test_rolled_geometry_moves_points_and_intrinsics_like_a_rolled_camera() -> None:
    # Rolling the image by theta about any point = the camera rolled about its optical axis (square pixels) with
    # the principal point moved: a 3D point, rotated by the roll, projects with the new intrinsics to the moved pixel.
    k = (700.0, 700.0, 640.0, 360.0)
    for flip in (False, True):
        geo = Geometry(scale=0.5, dx=-20.0, dy=15.0, width=384, height=224, flip=flip, roll=math.radians(7))
        fx, fy, cx, cy = geo.intrinsics(k)
        for x3, y3, z3 in [(2.0, 0.7, 15.0), (-5.0, 1.5, 30.0), (0.0, -2.0, 8.0)]:
            u, v = k[0] * x3 / z3 + k[2], k[1] * y3 / z3 + k[3]
            pu, pv = geo.points(np.array(u), np.array(v))
            c, s = math.cos(geo.roll), math.sin(geo.roll)
            xr, yr = c * x3 - s * y3, s * x3 + c * y3
            if flip:  # a mirrored camera sees x as -x; centre indices mirror to W-1-x (see the test above)
                xr, pu = -xr, pu - 1
            assert fx * xr / z3 + cx == pytest.approx(float(pu), abs=1e-6)
            assert fy * yr / z3 + cy == pytest.approx(float(pv), abs=1e-6)


def test_roll_keeps_boxes_masks_and_depth_on_their_pixels(shared_assets) -> None:
    """A strong roll (8 degrees) on a real synthetic frame: boxes still enclose their vehicles, lanes stay on the
    road, and each depth pixel holds the metres of the source pixel it came from."""
    from hydranet_ros.train.manifest import read_depth, read_segmentation

    sample = sim_sample(shared_assets, "000120")
    vehicle = dict(sample.labels["drivable_area"], map={"4": 1}, default=0)
    ds = MultiTaskDataset([sample], SPEC, augment=Augment(scale=(0.8, 1.2), roll_deg=8.0, colour=0.0, hue_deg=0),
                          crop=(320, 192), seed=5)
    src_metres = np.maximum(read_depth(sample.labels["depth"]), 1e-3)
    torch.manual_seed(1)
    rolls, inside, ratios = [], [], []
    for _ in range(10):
        item = ds[0]
        geo = item.geometry
        rolls.append(abs(geo.roll))
        vmask = geo.warp(read_segmentation(vehicle), nearest=True, fill=0)
        for x1, y1, x2, y2, _ in item.labels["detections"].boxes.numpy():
            inside.append(vmask[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))].mean())
        drivable, lanes = item.labels["drivable_area"].dense.numpy(), item.labels["lane_lines"].dense.numpy()
        assert np.all(drivable[lanes == 1] == 1)
        depth = item.labels["depth"].dense.numpy()
        ys, xs = np.nonzero(depth > 0)
        m = geo.affine()
        px = (geo.width - 1 - xs) if geo.flip else xs
        src = np.linalg.solve(m[:, :2], np.stack([px - m[0, 2], ys - m[1, 2]]))
        sx = np.clip(np.round(src[0]).astype(int), 0, 639)
        sy = np.clip(np.round(src[1]).astype(int), 0, 383)
        fx = geo.intrinsics(SIM_K)[0]
        ratios.append(np.median(depth[ys, xs] * fx / SIM_K[0] / src_metres[sy, sx]))
    assert max(rolls) > math.radians(3), "the roll is drawn up to roll_deg"
    assert len(inside) > 10 and np.median(inside) > 0.35
    np.testing.assert_allclose(ratios, 1.0, atol=0.02)


def test_weather_changes_pixels_only(shared_assets) -> None:
    """Night, fog, glare, rain, blur and noise leave every label as it was (same geometry, same targets and boxes)
    and leave the letterbox padding at the runtime's fill."""
    from hydranet_ros.core.geometry import PAD_RGB
    from hydranet_ros.train.photometric import CONDITIONS, Weather

    sample = sim_sample(shared_assets, "000120")
    plain = Augment(scale=(0.4, 0.45), colour=0.0, hue_deg=0)  # small: the crop has padding around the content
    for condition in CONDITIONS:
        weathered = Augment(scale=(0.4, 0.45), colour=0.0, hue_deg=0, weather=Weather(**{condition: 1.0}))
        items = []
        for augment in (plain, weathered):
            torch.manual_seed(7)
            items.append(MultiTaskDataset([sample], SPEC, augment=augment, crop=(384, 224), seed=2)[0])
        a, b = items
        assert a.geometry == b.geometry
        for task, label in a.labels.items():
            if label is not None and label.dense is not None:
                assert torch.equal(label.dense, b.labels[task].dense), (condition, task)
        assert torch.equal(a.labels["detections"].boxes, b.labels["detections"].boxes)
        diff = (a.image.int() - b.image.int()).abs().float().mean().item()
        assert diff > 1.0, f"{condition} did not change the image"
        padding = a.labels["drivable_area"].dense == 255
        assert padding.any()
        assert torch.equal(b.image[padding], a.image[padding]), f"{condition} changed the padding"
        fill = (b.image[padding] == torch.tensor(PAD_RGB, dtype=torch.uint8)).all(dim=1).float().mean()
        assert fill > 0.9  # the rest is the content's edge, blended into the fill by the resampling


def test_weather_and_roll_are_validated() -> None:
    from hydranet_ros.train.photometric import Weather

    with pytest.raises(ValueError, match="night"):
        Weather(night=1.5)
    with pytest.raises(ValueError, match="roll_deg"):
        Augment(roll_deg=40)
    assert Augment(weather={"fog": 0.5}).weather == Weather(fog=0.5)


@pytest.mark.parametrize("size", [(1280, 720), (1242, 375), (600, 800)])
def test_validation_samples_are_the_runtime_letterbox(tmp_path, size) -> None:
    """Without augmentation a sample is what the node feeds the network: the same content size, padding and
    pixels as core.geometry.Letterbox (the one letterbox), for wide, KITTI-shaped and portrait frames (whose
    uniform scale the resize rounds per axis)."""
    import cv2

    from hydranet_ros.core.geometry import Letterbox

    rgb = cv2.resize(cv2.imread(str(REPO / "hydranet_ros" / "samples" / "project_video_0750.jpg"))[:, :, ::-1],
                     size, interpolation=cv2.INTER_AREA)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    ds = MultiTaskDataset([Sample(image=path)], SPEC, augment=None)
    item = ds[0]
    lb = Letterbox.fit(*size, SPEC.input_width, SPEC.input_height)
    geo = item.geometry
    assert (geo.scale, geo.dx, geo.dy) == pytest.approx((lb.scale, lb.pad_x, lb.pad_y))
    np.testing.assert_array_equal(item.image.numpy(), lb.apply(np.ascontiguousarray(rgb)))


def test_focus_crops_keep_a_rare_class_box_in_view(tmp_path) -> None:
    """A 384-wide crop of a KITTI-shaped frame's 640-wide letterbox cuts away a pedestrian near its edge in most
    draws; with focus (p = 1) every crop holds the whole pedestrian, and frames without one still crop at random."""
    import cv2

    from hydranet_ros.train.augment import Focus

    rgb = cv2.resize(cv2.imread(str(REPO / "hydranet_ros" / "samples" / "project_video_0750.jpg")), (1242, 375))
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), rgb)
    person = [1150.0, 150.0, 1190.0, 260.0, "pedestrian"]
    car = [100.0, 180.0, 300.0, 280.0, "vehicle"]
    with_person = Sample(image=path, labels={"detections": {"boxes": [car, person]}})
    cars_only = Sample(image=path, labels={"detections": {"boxes": [car]}})

    def people_in_view(augment: Augment, sample: Sample, draws: int = 40) -> tuple[int, set[float]]:
        ds = MultiTaskDataset([sample], SPEC, augment=augment, crop=(384, 224), seed=5)
        ped = SPEC.heads[[h.name for h in SPEC.heads].index("detections")].classes.index("pedestrian")
        torch.manual_seed(0)
        seen, offsets = 0, set()
        for _ in range(draws):
            item = ds[0]
            boxes = item.labels["detections"].boxes.numpy()
            whole = (boxes[:, 2] - boxes[:, 0]) > 0.99 * 40 * item.geometry.scale  # not clipped by the crop
            seen += int(((boxes[:, 4] == ped) & whole).any())
            offsets.add(round(item.geometry.dx, 1))
        return seen, offsets

    plain = Augment(scale=(1.0, 1.0), colour=0.0, hue_deg=0, flip=False)
    focused = Augment(scale=(1.0, 1.0), colour=0.0, hue_deg=0, flip=False, focus=Focus(("pedestrian",), p=1.0))
    assert people_in_view(plain, with_person)[0] < 20
    assert people_in_view(focused, with_person)[0] == 40
    assert len(people_in_view(focused, cars_only)[1]) > 20  # no pedestrian: random crops, as without focus
    with pytest.raises(ValueError, match="focus p"):
        Augment(focus={"classes": ["pedestrian"], "p": 0})
    assert Augment.from_dict({"focus": {"classes": ["cyclist"], "p": 0.3}}).focus == Focus(("cyclist",), 0.3)
