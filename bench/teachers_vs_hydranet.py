"""The default HydraNet (all four tasks, one pass) vs the teachers it learned from (TwinLiteNet for drivable area and
lanes + PicoDet-S or FastestDet for boxes), ONNX Runtime CPU, on real 1280x720 frames, end to end per frame
(resize/letterbox, inference, decoding), interleaved so that machine noise hits every side alike.

    .venv/bin/python bench/teachers_vs_hydranet.py [--model models/hydranet_effl0_road.onnx] [--runs 10]
        [--card-key inference_vs_teachers]

Prints a table and the ratios (teachers' time / HydraNet's), writes bench/results/teachers_vs_hydranet.json, and with
--card-key records the figures in the model's card. Needs ../shared/assets (the teachers).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hydranet_ros.core.contract import default_model_path
from hydranet_ros.runtime.engines import load_engine
from hydranet_ros.runtime.preprocess import make_batch
from hydranet_ros.train.teachers import (
    FastestDet,
    PicoDetS,
    TwinLiteNet,
    default_asset,
    load_names,
    read_rgb,
)

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--runs", type=int, default=10, help="frames timed per side (after one warm-up each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--card-key", help="record the table in the model's card under metrics.NAME")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "teachers_vs_hydranet.json")
    args = ap.parse_args()

    frames_dir = default_asset("coco_names").parents[1] / "udacity" / "stills"
    frames = [read_rgb(p) for p in sorted(frames_dir.glob("*.jpg"))[: max(args.runs, 1)]]
    names = load_names(default_asset("coco_names"))
    engine = load_engine(args.model, providers=["cpu"], threads=args.threads)
    c = engine.contract

    def hydranet(rgb: np.ndarray) -> None:
        batch, _ = make_batch([rgb], c.input_width, c.input_height)
        engine.run(batch)

    sides = {
        "hydranet (4 tasks)": hydranet,
        "twinlitenet 640x360 (drivable + lanes)": TwinLiteNet(default_asset("twinlitenet"), threads=args.threads),
        "picodet-s 416 (boxes)": PicoDetS(default_asset("picodet"), names, threads=args.threads),
        "fastestdet 352 (boxes)": FastestDet(default_asset("fastestdet"), names, threads=args.threads),
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    for fn in sides.values():
        fn(frames[0])  # warm-up
    for rgb in tqdm(frames[: args.runs], desc="frames", unit="frame"):
        for name, fn in sides.items():  # interleaved
            t0 = time.perf_counter()
            fn(rgb)
            times[name].append(1000 * (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["hydranet (4 tasks)"]
    pair = {"twinlitenet + picodet-s": med["twinlitenet 640x360 (drivable + lanes)"] + med["picodet-s 416 (boxes)"],
            "twinlitenet + fastestdet": med["twinlitenet 640x360 (drivable + lanes)"] + med["fastestdet 352 (boxes)"]}
    print(f"\n{'':42s} {'median ms':>10s} {'÷ hydranet':>11s}")
    for k, v in {**med, **pair}.items():
        print(f"{k:42s} {v:10.1f} {v / base:11.2f}")
    result = {"model": str(args.model), "frames": args.runs, "threads": args.threads, "frame_size": "1280x720",
              "median_ms": {k: round(v, 1) for k, v in {**med, **pair}.items()},
              "ratio_to_hydranet": {k: round(v / base, 2) for k, v in {**med, **pair}.items()},
              "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
              "note": "hydranet gives depth too, which no teacher does"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    if args.card_key:
        from hydranet_ros.core.contract import record_card_metrics

        print(f"recorded in {record_card_metrics(args.model, args.card_key, result)} under metrics.{args.card_key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
