"""How good are the COCO teachers at our classes, and from which score is a teacher box a label?

Runs PicoDet-S, FastestDet and both pooled (as `hydranet pseudo-label --detector` does: COCO -> vehicle / pedestrian /
cyclist, riders merged, ego hood dropped) on frames with real boxes (default: kitti101 `train`, never `val`), and
measures per class and score threshold the precision and recall at IoU 0.5. KITTI's DontCare / Tram / Misc
regions and objects under --min-height px are "ignore": a teacher box on them is neither right nor wrong.

    .venv/bin/python bench/teacher_thresholds.py [--kitti ../shared/assets/kitti101] [--split train]

Prints a table per detector, the suggested thresholds, and writes bench/results/teacher_thresholds.json.
The suggestion: `threshold` = the lowest score at which precision >= --precision (a label the student can trust);
`low_threshold` = the lowest score at which precision >= --low-precision: between the two, boxes become don't-care
regions (as likely right as wrong), below, background.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hydranet_ros.train.importers import import_kitti
from hydranet_ros.train.manifest import IGNORE_CLASS
from hydranet_ros.train.metrics import box_iou
from hydranet_ros.train.teachers import (
    ClassMapping,
    FastestDet,
    PicoDetS,
    RoadDetector,
    default_asset,
    load_names,
    read_rgb,
)

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("vehicle", "pedestrian", "cyclist")
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.1, 0.91, 0.05))


def match(dets, gt_boxes, gt_classes, gt_ignore, cls: str, iou: float = 0.5):
    """Per detection of `cls` (best first): (score, 1 TP / 0 FP / -1 on an ignored object); and the GT count."""
    d = np.flatnonzero(dets.classes == cls)
    d = d[np.argsort(-dets.scores[d], kind="stable")]
    g = np.flatnonzero(gt_classes == cls)
    ign = np.flatnonzero(gt_ignore)
    taken = np.zeros(len(g), bool)
    out = []
    for i in d:
        box = dets.boxes[i:i + 1]
        ov = box_iou(box, gt_boxes[g])[0] if len(g) else np.zeros(0)
        j = int(np.argmax(ov)) if len(ov) else -1
        if j >= 0 and ov[j] >= iou and not taken[j]:
            taken[j] = True
            out.append((float(dets.scores[i]), 1))
            continue
        # On a don't-care region (or a too-small / other-class ignored object): neither right nor wrong.
        cover = box_iou(box, gt_boxes[ign])[0] if len(ign) else np.zeros(0)
        out.append((float(dets.scores[i]), -1 if (len(cover) and cover.max() >= iou) else 0))
    return out, int(len(g))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kitti", type=Path, default=REPO.parent / "shared/assets/kitti101")
    ap.add_argument("--split", default="train", choices=("train",), help="only train: val stays unseen")
    ap.add_argument("--min-height", type=float, default=25.0, help="smaller objects are ignored (px)")
    ap.add_argument("--precision", type=float, default=0.8)
    ap.add_argument("--low-precision", type=float, default=0.3)
    ap.add_argument("--tiles", type=int, default=4, help="crops across a wide frame for the tiled PicoDet-S")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/teacher_thresholds.json")
    args = ap.parse_args()

    samples = import_kitti(args.kitti, split=args.split)
    names = load_names(default_asset("coco_names"))
    pico = PicoDetS(default_asset("picodet"), names, min_score=0.1)
    fast = FastestDet(default_asset("fastestdet"), names, min_score=0.1)
    tiled = PicoDetS(default_asset("picodet"), names, min_score=0.1, tiles=args.tiles)
    detectors = {"picodet": RoadDetector([pico], ClassMapping()), "fastestdet": RoadDetector([fast], ClassMapping()),
                 f"picodet_tiles{args.tiles}": RoadDetector([tiled], ClassMapping()),
                 "both": RoadDetector([pico, fast], ClassMapping())}
    found: dict[str, dict[str, list]] = {d: {c: [] for c in CLASSES} for d in detectors}
    num_gt = dict.fromkeys(CLASSES, 0)
    t0 = time.perf_counter()
    for s in tqdm(samples, desc="teachers on kitti", unit="frame"):
        rgb = read_rgb(s.image)
        boxes = s.labels["detections"]["boxes"]
        gb = np.array([b[:4] for b in boxes], np.float32).reshape(-1, 4)
        gc = np.array([b[4] for b in boxes], dtype=str)
        small = (gb[:, 3] - gb[:, 1]) < args.min_height
        gign = (gc == IGNORE_CLASS) | small
        gc_eval = np.where(gign, IGNORE_CLASS, gc)
        for cls in CLASSES:
            num_gt[cls] += int(np.count_nonzero(gc_eval == cls))
        for name, det in detectors.items():
            dets = det(rgb)
            for cls in CLASSES:
                m, _ = match(dets, gb, gc_eval, gign, cls)
                found[name][cls] += m
    report: dict = {"frames": len(samples), "data": f"{args.kitti.name} {args.split}", "num_gt": num_gt,
                    "min_height_px": args.min_height, "seconds": round(time.perf_counter() - t0, 1), "detectors": {}}
    for name in detectors:
        rows = {}
        print(f"\n{name}: precision / recall at IoU 0.5 on {len(samples)} frames ({num_gt})")
        print("| score | " + " | ".join(f"{c} P | {c} R" for c in CLASSES) + " |")
        print("|---" * (1 + 2 * len(CLASSES)) + "|")
        for t in THRESHOLDS:
            cells, row = [], {}
            for cls in CLASSES:
                m = [(s, k) for s, k in found[name][cls] if s >= t and k >= 0]
                tp = sum(k for _, k in m)
                p = tp / len(m) if m else None
                r = tp / num_gt[cls] if num_gt[cls] else None
                row[cls] = {"precision": p, "recall": r, "tp": tp, "fp": len(m) - tp}
                cells += [f"{p:.2f}" if p is not None else "-", f"{r:.2f}" if r is not None else "-"]
            rows[str(t)] = row
            print(f"| {t:.2f} | " + " | ".join(cells) + " |")
        suggest = {}
        for cls in CLASSES:
            ok = [float(t) for t, row in rows.items() if (row[cls]["precision"] or 0) >= args.precision]
            low = [float(t) for t, row in rows.items() if (row[cls]["precision"] or 0) >= args.low_precision]
            suggest[cls] = {"threshold": min(ok) if ok else None, "low_threshold": min(low) if low else None}
        print(f"suggested (precision >= {args.precision} / >= {args.low_precision}): {suggest}")
        report["detectors"][name] = {"by_threshold": rows, "suggested": suggest}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
