"""hydranet eval MODEL MANIFEST...: accuracy of a model (ONNX through ONNX Runtime, or a checkpoint through torch) on
labelled frames: mIoU per segmentation class, depth AbsRel / RMSE / δ<1.25 on valid pixels, detection AP@0.5 and
recall per class. Prints a markdown table; --json and --markdown write them to files.

The model runs exactly as the node runs it (letterboxed to its input size, one fused pass), so the numbers are
the deployed model's. Labels from `hydranet pseudo-label` make this an agreement-with-the-teachers measure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="model file (.onnx with its card, or a .safetensors checkpoint)")
    p.add_argument("manifests", nargs="+", type=Path, help="labelled manifests (JSONL) to evaluate on")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full results as JSON")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="write the tables as markdown")
    p.add_argument("--card-key", metavar="NAME",
                   help="also record the results in the model's card under metrics.NAME (the model file and its "
                        "sha256 are unchanged)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="images per pass (default %(default)s)")
    p.add_argument("--providers", default="cpu", metavar="LIST",
                   help="ONNX Runtime providers in order, e.g. cuda,cpu (default %(default)s)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads (0: the runtime's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def evaluate_model(model: Path, manifests: list[Path], batch_size: int = 4, providers: tuple[str, ...] = ("cpu",),
                   threads: int = 0, progress: bool = True) -> dict:
    """{"model", "manifests", "images", "ms_per_image", "results": {kind: {task: metrics}}}."""
    from hydranet_ros.core.contract import read_card
    from hydranet_ros.model.spec import ModelSpec
    from hydranet_ros.runtime.engines import load_engine
    from hydranet_ros.train.data import MultiTaskDataset
    from hydranet_ros.train.evaluate import evaluate
    from hydranet_ros.train.manifest import read_manifest

    engine = load_engine(model, providers=providers, threads=threads, warn=lambda m: print(m, file=sys.stderr))
    spec = ModelSpec.from_dict(read_card(model)["spec"], source=str(model))
    samples = [s for m in manifests for s in read_manifest(m)]
    dataset = MultiTaskDataset(samples, spec)
    timing = {"s": 0.0, "images": 0}

    def predict(images):
        t0 = time.perf_counter()
        out = engine.run(images)
        timing["s"] += time.perf_counter() - t0
        timing["images"] += len(images)
        return out

    try:
        results = evaluate(predict, dataset, batch_size=batch_size, progress=progress)
    finally:
        engine.close()
    return {"model": str(model), "engine": engine.description, "manifests": [str(m) for m in manifests],
            "images": len(samples), "ms_per_image": round(1000 * timing["s"] / max(1, timing["images"]), 1),
            "results": results}


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.core.contract import ModelError
    from hydranet_ros.model.spec import SpecError
    from hydranet_ros.train.kinds import markdown_table
    from hydranet_ros.train.manifest import ManifestError
    from hydranet_ros.train.trainer import json_safe

    if args.batch_size < 1:
        print("hydranet eval: --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        report = evaluate_model(args.model, args.manifests, args.batch_size,
                                tuple(p.strip() for p in args.providers.split(",") if p.strip()), args.threads,
                                progress=not args.no_progress)
    except (ModelError, ManifestError, SpecError, OSError) as exc:
        print(f"hydranet eval: {exc}", file=sys.stderr)
        return 2
    if not report["results"]:
        print("hydranet eval: no image in these manifests carries a label for any task of this model",
              file=sys.stderr)
        return 2
    table = markdown_table(report["results"])
    head = (f"{report['model']} on {report['images']} images ({', '.join(report['manifests'])}); "
            f"{report['engine']}, {report['ms_per_image']} ms per image")
    print(head + "\n\n" + table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(report), indent=1))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(head + "\n\n" + table + "\n")
    if args.card_key:
        record_in_card(args.model, args.card_key, json_safe(report))
    return 0


def record_in_card(model: Path, key: str, report: dict) -> None:
    """metrics.<key> in the model's card: where the numbers came from, the headline numbers and the full results."""
    from hydranet_ros.core.contract import record_card_metrics
    from hydranet_ros.train.kinds import flat_metrics

    path = record_card_metrics(model, key, {
        "manifests": report["manifests"], "images": report["images"], "engine": report["engine"],
        "ms_per_image": report["ms_per_image"],
        "summary": {k: round(v, 4) for k, v in flat_metrics(report["results"]).items()},
        "results": report["results"]})
    print(f"recorded in {path} under metrics.{key}")
