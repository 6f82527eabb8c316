"""Depth anchored to the road through the camera's mounting, against LiDAR: kitti101 `val` (never trained on).

    .venv/bin/python bench/road_depth.py [MODEL] [--assets ../shared/assets] [--mounting 0,0,1.65,0,0,0] [--out DIR]

Each frame goes through the node's own pipeline (runtime.pipeline.Perception: JPEG decode, letterbox, the engine,
post-processing with the frame's KITTI intrinsics), then `network` depth (the model's own scale) and `road` depth
(runtime.road_scale: per frame, from the drivable-area mask and the mounting; frames are independent, since
kitti101's frames are not a sequence) are compared with the LiDAR depth by range band. Car distances from
ground contact (the bottom centre of the KITTI box on the road plane, core.mounting) are compared with the depth of
the 3-D label's nearest corner for cars >= 25 px tall, occlusion <= 1, truncation <= 0.3. Prints tables, writes
OUT/road_depth.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from hydranet_ros.core.contract import default_model_path
from hydranet_ros.core.geometry import Calibration, Intrinsics
from hydranet_ros.core.mounting import Mounting
from hydranet_ros.runtime.contract import load_contract
from hydranet_ros.runtime.engines import load_engine
from hydranet_ros.runtime.ground import ground_contacts
from hydranet_ros.runtime.pipeline import Perception
from hydranet_ros.runtime.road_scale import RoadScale, RoadScaleOptions
from hydranet_ros.train.importers import read_kitti_intrinsics
from hydranet_ros.train.metrics import box_iou

BANDS = ((0, 80), (0, 20), (20, 40), (40, 80))
REPO = Path(__file__).resolve().parents[1]


def depth_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    ratio = np.maximum(pred / true, true / pred)
    return {"pixels": int(true.size), "abs_rel": float(np.mean(np.abs(pred - true) / true)),
            "rmse": float(np.sqrt(np.mean((pred - true) ** 2))), "delta1": float(np.mean(ratio < 1.25)),
            "pred_over_true": float(np.median(pred / true))}


def near_face_depth(w: float, length: float, z: float, ry: float) -> float:
    """Optical depth of a KITTI 3-D box's nearest corner (location: bottom centre; ry: yaw about the camera's y):
    the part of the car a box's bottom edge stands on the road with, and the distance a planner needs."""
    c, s = np.cos(ry), np.sin(ry)
    dx = np.array([1, 1, -1, -1]) * length / 2
    dz = np.array([1, -1, 1, -1]) * w / 2
    return float(np.min(z - s * dx + c * dz))


def kitti_cars(label_file: Path) -> list[tuple[float, float, float, float, float]]:
    """(x1, y1, x2, y2, depth of the nearest corner) of the moderate cars (and vans) of a KITTI label_2 file."""
    cars = []
    for line in label_file.read_text().splitlines():
        f = line.split()
        if len(f) < 15 or f[0] not in ("Car", "Van"):
            continue
        trunc, occ = float(f[1]), int(float(f[2]))
        x1, y1, x2, y2 = (float(v) for v in f[4:8])
        if trunc <= 0.3 and occ <= 1 and y2 - y1 >= 25:
            _h, w, length, _x, _y, z, ry = (float(v) for v in f[8:15])
            cars.append((x1, y1, x2, y2, near_face_depth(w, length, z, ry)))
    return cars


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", type=Path, default=None, help="ONNX model (default: the shipped one)")
    p.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    p.add_argument("--mounting", default="0,0,1.65,0,0,0",
                   help="x,y,z,roll,pitch,yaw of the camera body in base_link (KITTI's colour camera: 1.65 m, level)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "road_depth")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    root = args.assets / "kitti101"
    if not (root / "split.json").is_file():
        print(f"no kitti101 in {args.assets} (see ../shared/assets/MANIFEST.md)", file=sys.stderr)
        return 2
    model = args.model or default_model_path()
    contract = load_contract(model)
    perception = Perception(load_engine(model, threads=args.threads), contract)
    mounting = Mounting.from_pose([float(v) for v in args.mounting.split(",")])
    opts = RoadScaleOptions()
    ids = json.loads((root / "split.json").read_text())["val"]
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"network": [], "road": []}
    scales, sources, contact, from_depth, detected = [], [], [], [], []
    t0 = time.time()
    for i, fid in enumerate(ids):
        jpeg = (root / "image_2" / f"{fid}.jpg").read_bytes()
        k = Intrinsics(*read_kitti_intrinsics(root / "calib" / f"{fid}.txt"))
        msg = SimpleNamespace(format="jpeg", data=jpeg)
        frame = perception.process([msg], [Calibration(k=k)], score_threshold=0.35).frames[0]
        r = frame.result
        depth, road = r.depth, r.masks["drivable_area"] > 0
        ground = mounting.ground_depth(r.dense_intrinsics, r.dense_size)
        est = RoadScale(opts).update(depth, road, ground)  # frames are not a sequence: no smoothing across them
        scales.append(est.scale)
        sources.append(est.source)
        lidar = cv2.imread(str(root / "sparse_depth" / f"{fid}.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 256
        v, u = np.nonzero(lidar > 0)
        sx, sy = r.dense_size[0] / r.source_size[0], r.dense_size[1] / r.source_size[1]
        du = np.clip(((u + 0.5) * sx).astype(int), 0, r.dense_size[0] - 1)
        dv = np.clip(((v + 0.5) * sy).astype(int), 0, r.dense_size[1] - 1)
        pred, true = depth[dv, du], lidar[v, u]
        ok = np.isfinite(pred) & (pred > 0)
        pairs["network"].append((pred[ok], true[ok]))
        pairs["road"].append((pred[ok] * est.scale, true[ok]))
        ground_contacts(r, mounting)  # the node's rule: boxes standing clear on the ground
        boxes = [d for ds in r.detections.values() for d in ds if d.label == "vehicle"]
        for x1, _y1, x2, y2, z in kitti_cars(root / "label_2" / f"{fid}.txt"):
            overlaps = box_iou([(d.x1, d.y1, d.x2, d.y2) for d in boxes], [(x1, _y1, x2, y2)])[:, 0]
            best = boxes[int(np.argmax(overlaps))] if len(boxes) else None
            if best is not None and overlaps.max() >= 0.5:
                dist = best.distance if best.distance_from == "ground" else (best.distance or 0) * est.scale
                detected.append((best.distance_from, dist, z))
            contact.append((mounting.ground_depth_at(r.source_intrinsics, (x1 + x2) / 2, y2), z))
            inside = depth[int(_y1 * sy):max(int(y2 * sy), int(_y1 * sy) + 1),
                           int(x1 * sx):max(int(x2 * sx), int(x1 * sx) + 1)]
            from_depth.append((float(np.median(inside[np.isfinite(inside)])) * est.scale, z))
        print(f"\r{i + 1}/{len(ids)} frames", end="", file=sys.stderr)
    print(f"\r{len(ids)} frames in {time.time() - t0:.0f} s", file=sys.stderr)

    report: dict = {"model": str(model), "mounting": args.mounting, "frames": len(ids), "bands": {},
                    "scale": {"median": float(np.median(scales)), "min": float(np.min(scales)),
                              "max": float(np.max(scales)),
                              "road_frames": sources.count("road")}}
    print(f"\nkitti101 val, {model.name}, mounting [{args.mounting}]: per-frame road scale median "
          f"{report['scale']['median']:.2f} (range {report['scale']['min']:.2f}-{report['scale']['max']:.2f}; "
          f"{report['scale']['road_frames']} of {len(ids)} frames from the road)\n")
    print("| band | LiDAR px | network AbsRel | road AbsRel | network δ<1.25 | road δ<1.25 | network pred/true | "
          "road pred/true |\n|---|---|---|---|---|---|---|---|")
    for lo, hi in BANDS:
        row = {}
        for name, per_frame in pairs.items():
            pred = np.concatenate([a for a, _ in per_frame])
            true = np.concatenate([b for _, b in per_frame])
            sel = (true > lo) & (true <= hi)
            row[name] = depth_errors(pred[sel], true[sel])
        report["bands"][f"{lo}-{hi} m"] = row
        n, rd = row["network"], row["road"]
        print(f"| {lo}-{hi} m | {n['pixels']} | {n['abs_rel']:.3f} | {rd['abs_rel']:.3f} | {n['delta1']:.3f} | "
              f"{rd['delta1']:.3f} | {n['pred_over_true']:.2f} | {rd['pred_over_true']:.2f} |")
    c, d = np.array(contact), np.array(from_depth)
    rel_c = np.abs(c[:, 0] - c[:, 1]) / c[:, 1]
    rel_d = np.abs(d[:, 0] - d[:, 1]) / d[:, 1]
    report["cars"] = {"count": len(c), "ground_contact_median_rel_error": float(np.median(rel_c)),
                      "box_median_depth_road_median_rel_error": float(np.median(rel_d))}
    print(f"\n{len(c)} cars: distance from ground contact / label {np.median(c[:, 0] / c[:, 1]):.2f} (median), "
          f"median relative error {np.median(rel_c):.3f} "
          f"(within 10 %: {np.mean(rel_c <= 0.1):.2f}); from the road-scaled depth inside the box "
          f"{np.median(rel_d):.3f}")
    by_source = {src: [abs(dd - zz) / zz for s, dd, zz in detected if s == src] for src in ("ground", "depth")}
    report["detected_cars"] = {src: {"count": len(v), "median_rel_error": float(np.median(v)) if v else None}
                               for src, v in by_source.items()}
    print(f"{len(detected)} of them detected (IoU >= 0.5): " + "; ".join(
        f"{len(v)} placed from {src}, median error {np.median(v):.3f}" for src, v in by_source.items() if v))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "road_depth.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out / 'road_depth.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
