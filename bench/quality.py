"""The model's quality report: one command, every held-out data set, the numbers a car needs.

    make quality                     # prepares the held-out data (once), then runs this on the default model
    .venv/bin/python bench/quality.py [MODEL] [--data runs/default/data] [--card] [--readme] [--out runs/quality]

The model runs as the node runs it: ONNX Runtime, letterboxed to its input, depth converted to metres with each
frame's own fx (no fitting to the ground truth), boxes from the graph's NMS. Data (built by `make quality-data`):
- kitti101 `val` (21 frames, never trained on): depth against LiDAR by range band (AbsRel, RMSE, δ<1.25), boxes
  against KITTI's labels (recall@IoU 0.5 at the node's default score_threshold, AP@0.5) for objects >= 25 px tall,
  occlusion <= 1, truncation <= 0.3 (the others, DontCare, Tram and Misc are don't-care: neither hit nor miss);
- real frames held out by condition (config/data/real_heldout.yaml): drivable area and lanes against TwinLiteNet,
  vehicles against the boxes both COCO teachers agree on (PicoDet-S and FastestDet, score >= 0.5, IoU >= 0.5;
  boxes only one teacher finds are don't-care);
- the synthetic val set (exact labels).
Writes OUT/quality.json, OUT/quality.md, OUT/kitti101_val_sheet.png (image | drivable + lanes | depth, log scale
2-80 m | depth error vs LiDAR: blue too near, red too far, white within 10 % | boxes: prediction green, label red,
don't-care grey); --card records the tables in the model's card (metrics.quality), --readme rewrites the README's
model table between its `quality` markers.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

from hydranet_ros.core.contract import default_model_path, read_card, record_card_metrics
from hydranet_ros.core.geometry import metric_scale
from hydranet_ros.core.tasks import DepthOptions
from hydranet_ros.model.spec import ModelSpec
from hydranet_ros.runtime.engines import load_engine
from hydranet_ros.train.data import Item, MultiTaskDataset
from hydranet_ros.train.kinds import Label, update_detection
from hydranet_ros.train.manifest import IGNORE_CLASS, Sample, read_manifest
from hydranet_ros.train.metrics import DepthMetric, DetectionMetric, SegmentationMetric, box_iou

REPO = Path(__file__).resolve().parents[1]
BANDS = ((0.0, 80.0), (0.0, 20.0), (20.0, 40.0), (40.0, 80.0))
BORDER_PX = 3  # the content's outer rim in network pixels: where padding leaks in, phantom points would come from
TOP_ROWS = 0.1  # the top tenth of a road frame is sky, buildings or far road: never a near wall
MIN_HEIGHT_PX = 25.0  # KITTI "moderate": boxes at least this tall in the original image
MAX_OCCLUSION = 1
MAX_TRUNCATION = 0.3
CONSENSUS_SCORE = 0.5
# What "done" means (issue 13): the report prints each figure beside its target.
TARGETS = {
    "kitti_depth_abs_rel": ("<=", 0.15), "kitti_depth_delta1": (">=", 0.80),
    "kitti_vehicle_recall": (">=", 0.85), "kitti_person_recall": (">=", 0.60),
    "real_drivable_miou_min": (">=", 0.85), "real_vehicle_recall": (">=", 0.75),
}
README_START, README_END = "<!-- quality:start -->", "<!-- quality:end -->"


def node_score_threshold() -> float:
    """The node's default score_threshold (config/hydranet.yaml): recall is what the node would publish."""
    doc = yaml.safe_load((REPO / "config/hydranet.yaml").read_text())
    return float(doc["/**"]["ros__parameters"]["score_threshold"])


class BandDepth:
    """AbsRel, RMSE and δ<1.25 in metres per band of the true depth (the project's `DepthMetric` on the band's
    pixels; the prediction is never clipped to the band), and the geometric mean of predicted / true depth."""

    def __init__(self) -> None:
        self.metrics = {b: DepthMetric(min_depth=1e-3, max_depth=1e4) for b in BANDS}
        self.log_ratio = dict.fromkeys(BANDS, 0.0)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        for lo, hi in BANDS:
            m = np.isfinite(target) & (target > lo) & (target <= hi)
            self.metrics[(lo, hi)].update(pred, np.where(m, target, 0.0))
            p = np.clip(pred[m].astype(np.float64), 1e-3, None)
            self.log_ratio[(lo, hi)] += float(np.sum(np.log(p / target[m])))

    def result(self) -> dict[str, dict[str, float | None]]:
        out = {}
        for band, metric in self.metrics.items():
            r, n = metric.result(), metric.pixels
            out[f"{band[0]:.0f}-{band[1]:.0f} m"] = {
                "pixels": n, "abs_rel": r["abs_rel"] if n else None, "rmse": r["rmse"] if n else None,
                "delta1": r["delta1"] if n else None,
                # Geometric mean of pred / true: < 1 means too short (the old model's failure), > 1 too far.
                "scale": float(np.exp(self.log_ratio[band] / n)) if n else None}
        return out


def uncapped(spec: ModelSpec) -> ModelSpec:
    """The spec with the depth heads' cap lifted, so that the dataset hands over every LiDAR point (the metric is
    over what the car sees, not over what the head can represent)."""
    doc = copy.deepcopy(spec.to_dict())
    for h in doc["heads"]:
        if h["type"] == "depth":
            h["max_depth"] = 1e6
    return ModelSpec.from_dict(doc, source="quality")


def kitti_moderate(samples: list[Sample]) -> list[Sample]:
    """KITTI boxes that are too small, occluded or truncated become don't-care (read from label_2 beside image_2)."""
    out = []
    for s in samples:
        label_file = s.image.parent.parent / "label_2" / f"{s.image.stem}.txt"
        lines = [ln.split() for ln in label_file.read_text().splitlines() if ln.strip()]
        boxes = s.labels["detections"]["boxes"]
        if len(lines) != len(boxes):
            raise SystemExit(f"{label_file}: {len(lines)} lines but {len(boxes)} boxes in the manifest")
        new = []
        for f, b in zip(lines, boxes, strict=True):
            hard = (float(f[7]) - float(f[5]) < MIN_HEIGHT_PX or int(float(f[2])) > MAX_OCCLUSION
                    or float(f[1]) > MAX_TRUNCATION)
            new.append(list(b[:4]) + [IGNORE_CLASS if hard else b[4]])
        s = copy.copy(s)
        s.labels = {**s.labels, "detections": {"boxes": new}}
        out.append(s)
    return out


def teacher_consensus(samples: list[Sample], assets: Path) -> list[Sample]:
    """Vehicle labels = PicoDet-S boxes that FastestDet confirms (IoU >= 0.5, both >= CONSENSUS_SCORE); every other
    teacher box (either teacher, >= 0.3, any class) is don't-care. People are not scored here: the teachers miss
    most of them on these frames (bench/teacher_thresholds.py)."""
    from hydranet_ros.train.teachers import (
        ClassMapping,
        FastestDet,
        PicoDetS,
        RoadDetector,
        default_asset,
        load_names,
        read_rgb,
    )

    names = load_names(default_asset("coco_names", assets))
    pico = RoadDetector([PicoDetS(default_asset("picodet", assets), names)], ClassMapping())
    fast = RoadDetector([FastestDet(default_asset("fastestdet", assets), names)], ClassMapping())
    out = []
    for s in tqdm(samples, desc="teacher consensus", unit="frame", leave=False, disable=None):
        rgb = read_rgb(s.image)
        a, b = pico(rgb), fast(rgb)
        av = (a.classes == "vehicle") & (a.scores >= CONSENSUS_SCORE)
        bv = (b.classes == "vehicle") & (b.scores >= CONSENSUS_SCORE)
        agree = np.zeros(len(a), bool)
        if av.any() and bv.any():
            agree[av] = box_iou(a.boxes[av], b.boxes[bv]).max(axis=1) >= 0.5
        boxes = [list(map(float, a.boxes[i])) + ["vehicle"] for i in np.flatnonzero(agree)]
        boxes += [list(map(float, d.boxes[i])) + [IGNORE_CLASS] for d, keep in ((a, ~agree), (b, None))
                  for i in np.flatnonzero(keep if keep is not None else np.ones(len(d), bool))]
        s = copy.copy(s)
        s.labels = {**s.labels, "detections": {"boxes": boxes}}
        out.append(s)
    return out


class Run:
    """The model over one data set, as the node runs it; metrics per group (condition) of frames."""

    def __init__(self, engine: Any, spec: ModelSpec, score_threshold: float) -> None:
        self.engine, self.spec, self.threshold = engine, spec, score_threshold
        self.depth_head = next((h for h in spec.heads if h.type == "depth"), None)
        self.det_head = next((h for h in spec.heads if h.type == "detection"), None)
        self.seg_heads = [h for h in spec.heads if h.type == "segmentation"]

    def __call__(self, samples: list[Sample], group_of=None, sheet: list | None = None) -> dict:
        ds = MultiTaskDataset(samples, uncapped(self.spec))
        groups: dict[str, dict[str, Any]] = {}
        for i in tqdm(range(len(ds)), desc="quality", unit="frame", leave=False, disable=None):
            item, s = ds[i], samples[i]
            out = {k: v[0] for k, v in self.engine.run(item.image.numpy()[None]).items()}
            g = groups.setdefault(group_of(s) if group_of else "all", self._metrics())
            g["frames"] += 1
            for h in self.seg_heads:
                if item.labels[h.name] is not None:
                    g["seg"][h.name].update(out[h.name], item.labels[h.name].dense.numpy())
            depth_m = target_m = None
            if self.depth_head is not None and item.labels[self.depth_head.name] is not None:
                fx = item.geometry.intrinsics(s.intrinsics)[0]
                to_m = metric_scale(fx, DepthOptions.resolve(self.depth_head.options).canonical_fx)
                depth_m = out[self.depth_head.name] * to_m
                target_m = item.labels[self.depth_head.name].dense.numpy() * to_m
                g["depth"].update(depth_m, target_m)
                rim = self._rim(item.geometry, s, depth_m.shape)
                g["border"].update(np.where(rim, depth_m, 0), np.where(rim, target_m, 0))
            if self.depth_head is not None:
                y0, y1, x0, x1 = self._content(item.geometry, s, out[self.depth_head.name].shape)
                top = out[self.depth_head.name][y0:y0 + max(1, int(TOP_ROWS * (y1 - y0))), x0:x1]
                g["top_canonical_m"].append(float(np.median(top)))
            if self.det_head is not None and item.labels[self.det_head.name] is not None:
                label = item.labels[self.det_head.name]
                self._boxes(g, out[self.det_head.name], label.boxes.numpy(), label.ignore.numpy())
            if sheet is not None:
                sheet.append(self._tile_row(item, out, depth_m, target_m, s))
        return groups

    def _metrics(self) -> dict[str, Any]:
        classes = list(self.det_head.classes) if self.det_head else []
        return {"frames": 0, "seg": {h.name: SegmentationMetric(list(h.classes)) for h in self.seg_heads},
                "depth": BandDepth(), "border": BandDepth(), "top_canonical_m": [],
                "ap": DetectionMetric(classes), "at_threshold": DetectionMetric(classes)}

    @staticmethod
    def _content(geo: Any, s: Sample, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Rows and columns of the letterbox's content (the image without its padding)."""
        y0, y1 = int(max(0, geo.dy)), int(min(shape[0], round(geo.dy + s.size[1] * geo.scale)))
        x0, x1 = int(max(0, geo.dx)), int(min(shape[1], round(geo.dx + s.size[0] * geo.scale)))
        return y0, y1, x0, x1

    def _rim(self, geo: Any, s: Sample, shape: tuple[int, ...]) -> np.ndarray:
        y0, y1, x0, x1 = self._content(geo, s, shape)
        rim = np.zeros(shape, bool)
        rim[y0:y1, x0:x1] = True
        b = BORDER_PX
        rim[y0 + b:y1 - b, x0 + b:x1 - b] = False
        return rim

    def _boxes(self, g: dict, rows: np.ndarray, boxes: np.ndarray, ignore: np.ndarray) -> None:
        update_detection(g["ap"], rows, boxes, ignore)  # AP needs the low-score tail
        update_detection(g["at_threshold"], rows, boxes, ignore, min_score=self.threshold)  # what the node publishes

    def summarise(self, g: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"frames": g["frames"]}
        seg = {t: m.result() for t, m in g["seg"].items() if m.confusion.sum()}
        if seg:
            out["segmentation"] = {t: {"miou": r["miou"], "iou": r["iou"]} for t, r in seg.items()}
        depth = g["depth"].result()
        if depth["0-80 m"]["pixels"]:
            out["depth"] = depth
            out["depth_border"] = g["border"].result()["0-80 m"]
        if g["top_canonical_m"]:
            out["top_rows_median_depth_canonical_m"] = float(np.median(g["top_canonical_m"]))
        ap, at = g["ap"].result(), g["at_threshold"].result()
        if any(c["num_gt"] for c in ap["classes"].values()):
            classes = {}
            for c in ap["classes"]:
                classes[c] = {"objects": ap["classes"][c]["num_gt"], "recall": at["classes"][c]["recall"],
                              "ap": ap["classes"][c]["ap"], "false_positives": at["classes"][c]["fp"]}
            people = [c for c in ("pedestrian", "cyclist") if c in classes]
            n = sum(classes[c]["objects"] for c in people)
            tp = sum(at["classes"][c]["tp"] for c in people)
            out["detection"] = {"score_threshold": self.threshold, "classes": classes,
                                "person_recall": tp / n if n else None, "person_objects": n}
        return out

    def _tile_row(self, item: Item, out: dict, depth_m: np.ndarray | None, target_m: np.ndarray | None,
                  s: Sample) -> np.ndarray:
        """image | drivable + lanes | depth | depth error vs LiDAR | boxes (pred green, labels red, don't-care grey),
        cropped to the letterbox's content."""
        from hydranet_ros.runtime.overlay import SEGMENT_COLOURS, tint

        img = item.image.numpy()
        y0, y1, x0, x1 = self._content(item.geometry, s, img.shape[:2])
        seg = img.copy()
        for i, h in enumerate(self.seg_heads):
            tint(seg, out[h.name] > 0, SEGMENT_COLOURS[i % len(SEGMENT_COLOURS)])
        tiles = [img, seg]
        if depth_m is not None and target_m is not None:
            tiles.append(depth_colours(depth_m))
            err = np.zeros_like(img)
            valid = target_m > 0
            rel = np.clip((depth_m - target_m) / np.maximum(target_m, 1e-3), -0.5, 0.5)
            # Blue: too near, red: too far, white: right (|error| < 10 % fades to white).
            colour = np.stack([np.clip(1 + 2 * rel, 0, 1), 1 - 2 * np.abs(rel), np.clip(1 - 2 * rel, 0, 1)], -1)
            err[valid] = (colour[valid] * 255).astype(np.uint8)
            err = cv2.dilate(err, np.ones((2, 2), np.uint8))
            tiles.append(err)
        box = img.copy()
        if self.det_head is not None:
            label = item.labels[self.det_head.name] or Label(boxes=torch.zeros(0, 5), ignore=torch.zeros(0, 4))
            for b in label.ignore.tolist():
                cv2.rectangle(box, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (150, 150, 150), 1)
            for b in label.boxes.tolist():
                cv2.rectangle(box, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (255, 40, 40), 1)
            for r in out[self.det_head.name]:
                if r[4] >= self.threshold:
                    cv2.rectangle(box, (int(r[0]), int(r[1])), (int(r[2]), int(r[3])), (40, 255, 40), 1)
        tiles.append(box)
        return np.hstack([t[y0:y1, x0:x1] for t in tiles])


def depth_colours(depth_m: np.ndarray, near: float = 2.0, far: float = 80.0) -> np.ndarray:
    """Metres -> RGB on a log scale from `near` (red) to `far` (blue): every range band gets its share of colours
    (the node's inverse scale spends them on the first few metres)."""
    t = (np.log(np.clip(depth_m, near, far)) - np.log(near)) / (np.log(far) - np.log(near))
    bgr = cv2.applyColorMap(((1 - t) * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def markdown(report: dict[str, Any]) -> str:
    def f(v: Any, digits: int = 2) -> str:
        return "–" if v is None else f"{v:.{digits}f}"

    lines = [f"Model `{report['model']}` (sha256 {report['sha256'][:12]}), {report['engine']}; "
             f"score_threshold {report['score_threshold']}.", ""]
    k = report.get("kitti101_val")
    if k:
        lines += [f"**kitti101 val** ({k['frames']} frames, LiDAR depth, KITTI boxes; never trained on)", "",
                  "| depth band | LiDAR px | AbsRel | RMSE m | δ<1.25 | pred/true |", "|---|---|---|---|---|---|"]
        for band, r in k.get("depth", {}).items():
            lines.append(f"| {band} | {r['pixels']} | {f(r['abs_rel'])} | {f(r['rmse'], 1)} | {f(r['delta1'])} | "
                         f"{f(r['scale'])} |")
        r = k.get("depth_border")
        if r and r["pixels"]:
            lines.append(f"| outer {BORDER_PX} px of the image | {r['pixels']} | {f(r['abs_rel'])} | "
                         f"{f(r['rmse'], 1)} | {f(r['delta1'])} | {f(r['scale'])} |")
        det = k.get("detection")
        if det:
            lines += ["", "| class | objects | recall@0.5 | AP@0.5 |", "|---|---|---|---|"]
            for c, r in det["classes"].items():
                lines.append(f"| {c} | {r['objects']} | {f(r['recall'])} | {f(r['ap'])} |")
            lines.append(f"| pedestrian + cyclist | {det['person_objects']} | {f(det['person_recall'])} | |")
    real = report.get("real_heldout")
    if real:
        lines += ["", "**Real frames held out, by condition** (vs TwinLiteNet and the teachers' consensus)", "",
                  "| condition | frames | drivable mIoU | lane IoU | vehicles | vehicle recall | top-row depth m* |",
                  "|---|---|---|---|---|---|---|"]
        for cond, r in real.items():
            seg = r.get("segmentation", {})
            lane = seg.get("lane_lines", {}).get("iou", {})
            det = r.get("detection", {}).get("classes", {}).get("vehicle", {})
            lines.append(f"| {cond} | {r['frames']} | {f(seg.get('drivable_area', {}).get('miou'))} | "
                         f"{f(lane.get('lane_line'))} | {det.get('objects', 0)} | {f(det.get('recall'))} | "
                         f"{f(r.get('top_rows_median_depth_canonical_m'), 0)} |")
        lines += ["", "\\* median depth of the top tenth of the image (sky, buildings, far road) for the model's "
                  "canonical camera: a few metres there is a phantom wall."]
    sim = report.get("sim_val")
    if sim:
        seg = sim.get("segmentation", {})
        d = sim.get("depth", {}).get("0-80 m", {})
        v = sim.get("detection", {}).get("classes", {}).get("vehicle", {})
        lines += ["", f"**Synthetic val** ({sim['frames']} frames): drivable mIoU "
                  f"{f(seg.get('drivable_area', {}).get('miou'))}, "
                  f"lane mIoU {f(seg.get('lane_lines', {}).get('miou'))}, "
                  f"depth AbsRel {f(d.get('abs_rel'))} / δ<1.25 {f(d.get('delta1'))} (0-80 m), vehicle recall "
                  f"{f(v.get('recall'))} / AP {f(v.get('ap'))}"]
    lines += ["", "| target | value | goal | met |", "|---|---|---|---|"]
    for key, t in report["targets"].items():
        lines.append(f"| {key} | {f(t['value'])} | {t['op']} {t['goal']} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def targets(report: dict[str, Any]) -> dict[str, Any]:
    k = report.get("kitti101_val", {})
    det = k.get("detection", {})
    real = report.get("real_heldout", {})
    drivable = [r["segmentation"]["drivable_area"]["miou"] for r in real.values()
                if "drivable_area" in r.get("segmentation", {})]
    tp = n = 0
    for r in real.values():
        v = r.get("detection", {}).get("classes", {}).get("vehicle")
        if v and v["objects"]:
            n += v["objects"]
            tp += round(v["recall"] * v["objects"])
    values = {
        "kitti_depth_abs_rel": k.get("depth", {}).get("0-80 m", {}).get("abs_rel"),
        "kitti_depth_delta1": k.get("depth", {}).get("0-80 m", {}).get("delta1"),
        "kitti_vehicle_recall": det.get("classes", {}).get("vehicle", {}).get("recall"),
        "kitti_person_recall": det.get("person_recall"),
        "real_drivable_miou_min": min(drivable) if drivable else None,
        "real_vehicle_recall": tp / n if n else None,
    }
    out = {}
    for key, (op, goal) in TARGETS.items():
        v = values[key]
        met = v is not None and (v <= goal if op == "<=" else v >= goal)
        out[key] = {"value": v, "op": op, "goal": goal, "met": met}
    return out


def update_readme(readme: Path, text: str) -> None:
    doc = readme.read_text()
    if README_START not in doc or README_END not in doc:
        raise SystemExit(f"{readme}: no {README_START} ... {README_END} block to rewrite")
    head, rest = doc.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{text}{README_END}{tail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", type=Path, default=default_model_path())
    ap.add_argument("--data", type=Path, default=REPO / "runs/default/data",
                    help="the prepared manifests (make quality-data)")
    ap.add_argument("--assets", type=Path, default=REPO.parent / "shared/assets", help="for the teachers")
    ap.add_argument("--out", type=Path, default=REPO / "runs/quality")
    ap.add_argument("--only", choices=("kitti", "real", "sim"), action="append", help="a subset of the data sets")
    ap.add_argument("--card", action="store_true", help="record the report in the model's card (metrics.quality)")
    ap.add_argument("--readme", action="store_true", help="rewrite the README's model table")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    wanted = set(args.only or ("kitti", "real", "sim"))
    files = {"kitti": args.data / "kitti101_val.jsonl", "real": args.data / "pseudo_heldout/manifest.jsonl",
             "sim": args.data / "sim_val.jsonl"}
    missing = [str(p) for k, p in files.items() if k in wanted and not p.is_file()]
    if missing:
        print(f"quality: missing {', '.join(missing)}: run `make quality-data` first", file=sys.stderr)
        return 2
    card = read_card(args.model)
    spec = ModelSpec.from_dict(card["spec"], source=str(args.model))
    engine = load_engine(args.model, threads=args.threads)
    run = Run(engine, spec, node_score_threshold())
    try:  # the repository-relative name: the report lands in the card and the README, which travel
        name = args.model.resolve().relative_to(REPO).as_posix()
    except ValueError:
        name = str(args.model)
    report: dict[str, Any] = {"model": name, "sha256": card["sha256"], "engine": engine.description,
                              "score_threshold": run.threshold}
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    if "kitti" in wanted:
        samples = kitti_moderate(read_manifest(files["kitti"]))
        sheet: list[np.ndarray] = []
        report["kitti101_val"] = run.summarise(run(samples, sheet=sheet)["all"])
        width = max(r.shape[1] for r in sheet)
        rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0))) for r in sheet]
        cv2.imwrite(str(args.out / "kitti101_val_sheet.png"), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    if "real" in wanted:
        samples = teacher_consensus(read_manifest(files["real"]), args.assets)
        groups = run(samples, group_of=lambda s: s.extra.get("condition", "unknown"))
        report["real_heldout"] = {c: run.summarise(g) for c, g in sorted(groups.items())}
    if "sim" in wanted:
        report["sim_val"] = run.summarise(run(read_manifest(files["sim"]))["all"])
    engine.close()
    report["targets"] = targets(report)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = markdown(report)
    print(text)
    (args.out / "quality.json").write_text(json.dumps(report, indent=1, default=float))
    (args.out / "quality.md").write_text(text)
    print(f"wrote {args.out}/quality.json, quality.md, kitti101_val_sheet.png in {report['seconds']} s")
    if args.card:
        record_card_metrics(args.model, "quality", json.loads(json.dumps(report, default=float)))
        print(f"recorded in the card of {args.model} under metrics.quality")
    if args.readme:
        update_readme(REPO / "README.md", text)
        print("rewrote the README's quality table")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
