"""The bird's-eye drivable grid and the lane polylines against the simulator's exact labels (issue 15), on the sim
val frames.

    .venv/bin/python bench/drivable_grid.py [MODEL] [--manifest runs/default/data/sim_val.jsonl] [--frames N]

Each frame goes through the node's pipeline (runtime.pipeline.Perception) with the sim camera's intrinsics; its
mounting is the frame's own camera pose (frames.jsonl: height, pitch, roll). The grid (runtime.ground.GroundGrid,
0.2 m cells, 0-40 m ahead, +-20 m, within 30 m of the camera) from the model's drivable-area mask is compared with
the grid of the true road pixels (semantic road and lane lines) projected the same way: IoU of the free cells over
the cells both see. Lane polylines (runtime.lanes) from the model's lane-lines mask against the true lane-line
pixels projected to the ground within 3-30 m: the share of those points within 1 m of a polyline, and their mean
lateral distance to it. As a check of the mounting's conventions, the road scale of the TRUE depth (should be 1)
is reported too. Prints the figures, writes OUT/drivable_grid.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from hydranet_ros.core.contract import default_model_path
from hydranet_ros.core.geometry import Calibration, Intrinsics
from hydranet_ros.core.mounting import Mounting
from hydranet_ros.runtime.contract import load_contract
from hydranet_ros.runtime.engines import load_engine
from hydranet_ros.runtime.ground import FREE, UNKNOWN, GridSpec, GroundGrid
from hydranet_ros.runtime.lanes import ground_points, lane_lines
from hydranet_ros.runtime.pipeline import Perception
from hydranet_ros.runtime.road_scale import RoadScaleOptions, frame_scale

REPO = Path(__file__).resolve().parents[1]
SIM_K = Intrinsics(554.2562584220408, 554.2562584220408, 320.0, 192.0)  # dataset.json (pixel centres at .0)


def sim_mounting(camera: dict) -> Mounting:
    """frames.jsonl's camera pose: MetaDrive's pitch is negative looking down, REP 103's positive."""
    return Mounting.from_pose([0.0, 0.0, camera["height_m"], math.radians(camera.get("roll_deg", 0.0)),
                               -math.radians(camera["pitch_deg"]), 0.0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", type=Path, default=None)
    p.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    p.add_argument("--manifest", type=Path, default=REPO / "runs" / "default" / "data" / "sim_val.jsonl",
                   help="the sim val frames (make quality-data); without it every 10th frame of the sim set")
    p.add_argument("--frames", type=int, default=60, help="at most this many frames")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "drivable_grid")
    args = p.parse_args()
    sim = args.assets / "sim"
    if not (sim / "frames.jsonl").is_file():
        print(f"no sim set in {args.assets}", file=sys.stderr)
        return 2
    poses = {json.loads(line)["frame"]: json.loads(line)["camera"] for line in (sim / "frames.jsonl").open()}
    if args.manifest.is_file():
        stems = [Path(json.loads(line)["image"]).stem for line in args.manifest.open()]
    else:
        stems = sorted(poses)[::10]
    stems = stems[: args.frames]
    model = args.model or default_model_path()
    perception = Perception(load_engine(model, threads=2), load_contract(model))
    spec = GridSpec()
    ious, scales, lane_cover, lane_err, lane_counts = [], [], [], [], []
    truth_grid, pred_grid = GroundGrid(), GroundGrid()
    for i, stem in enumerate(stems):
        mounting = sim_mounting(poses[stem])
        msg = SimpleNamespace(format="jpeg", data=(sim / "rgb" / f"{stem}.jpg").read_bytes())
        r = perception.process([msg], [Calibration(k=SIM_K)], score_threshold=0.35).frames[0].result
        semantic = cv2.imread(str(sim / "semantic" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        road = (semantic == 1) | (semantic == 2)
        truth = truth_grid.grid(road, SIM_K, mounting, spec)
        pred = pred_grid.grid(r.masks["drivable_area"] > 0, r.dense_intrinsics, mounting, spec)
        both = (truth != UNKNOWN) & (pred != UNKNOWN)
        inter = np.sum(both & (truth == FREE) & (pred == FREE))
        union = np.sum(both & ((truth == FREE) | (pred == FREE)))
        ious.append(inter / union if union else math.nan)
        lines = lane_lines(r.masks["lane_lines"] > 0, r.dense_intrinsics, mounting)
        lane_counts.append(len(lines))
        truth_lanes = ground_points(semantic == 2, SIM_K, mounting)
        truth_lanes = truth_lanes[(truth_lanes[:, 0] >= 3) & (truth_lanes[:, 0] <= 30)]
        if len(truth_lanes):
            gap = np.full(len(truth_lanes), np.inf)
            for line in lines:
                on = (truth_lanes[:, 0] >= line.x_min) & (truth_lanes[:, 0] <= line.x_max)
                gap[on] = np.minimum(gap[on], np.abs(truth_lanes[on, 1] - line.y(truth_lanes[on, 0])))
            lane_cover.append(float(np.mean(gap <= 1.0)))
            if (gap <= 1.0).any():
                lane_err.append(float(np.mean(gap[gap <= 1.0])))
        depth = cv2.imread(str(sim / "depth" / f"{stem}.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 256
        ground = mounting.ground_depth(SIM_K, (depth.shape[1], depth.shape[0]))
        scale, _, _ = frame_scale(np.where(depth > 0, depth, np.nan), semantic == 1, ground, RoadScaleOptions())
        scales.append(scale if scale is not None else math.nan)
        print(f"\r{i + 1}/{len(stems)} frames", end="", file=sys.stderr)
    print(file=sys.stderr)
    report = {"model": str(model), "frames": len(stems), "grid": spec.__dict__,
              "free_iou_mean": float(np.nanmean(ious)), "free_iou_median": float(np.nanmedian(ious)),
              "free_iou_min": float(np.nanmin(ious)),
              "lanes_per_frame": float(np.mean(lane_counts)), "lane_points_within_1m": float(np.mean(lane_cover)),
              "lane_lateral_error_m": float(np.mean(lane_err)),
              "true_depth_road_scale_median": float(np.nanmedian(scales)),
              "true_depth_road_scale_range": [float(np.nanmin(scales)), float(np.nanmax(scales))]}
    print(f"sim val, {len(stems)} frames, {model.name}: drivable grid vs the true road, free-cell IoU within "
          f"{spec.max_range:g} m: mean {report['free_iou_mean']:.3f}, median {report['free_iou_median']:.3f}, "
          f"min {report['free_iou_min']:.3f}")
    print(f"lane polylines: {report['lanes_per_frame']:.1f} per frame; {report['lane_points_within_1m']:.2f} of the "
          f"true lane-line points within 3-30 m lie within 1 m of one, {report['lane_lateral_error_m']:.3f} m from "
          "it (mean)")
    print(f"check of the mounting conventions: road scale of the true depth, median "
          f"{report['true_depth_road_scale_median']:.4f} (range {report['true_depth_road_scale_range'][0]:.3f}-"
          f"{report['true_depth_road_scale_range'][1]:.3f}); 1 is right")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "drivable_grid.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out / 'drivable_grid.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
