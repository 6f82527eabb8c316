"""hydranet quantize MODEL --calibrate MANIFEST: the int8 form of an exported model for the CPU, and its card.

ONNX Runtime static quantization (QDQ, int8 weights per output channel, uint8 activations), with the activation
ranges calibrated on real frames of a manifest, letterboxed exactly as the node feeds the network. Each head's
output convolution and its decoding stay float (runtime/quantize.py says why). The card records the precision,
the calibration frames and, with --eval, each task's headline metrics of the float and the int8 model side by
side on labelled frames that the calibration never saw. The node, `hydranet eval` and the benchmarks take the
result like any model (`model: path/to/MODEL_int8.onnx`).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

DEFAULT_OPS = "Conv,Clip,Relu,Add,Mul,Concat,MaxPool,Resize"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="an exported .onnx model with its card")
    p.add_argument("--calibrate", type=Path, nargs="+", required=True, metavar="MANIFEST",
                   help="manifests (JSONL, e.g. from `hydranet import frames`) whose images calibrate the ranges; "
                        "labels are not needed")
    p.add_argument("--frames", type=int, default=32, metavar="N",
                   help="calibration frames, drawn evenly at random from the manifests (default %(default)s)")
    p.add_argument("-o", "--output", type=Path, help="int8 model to write (default: MODEL_int8.onnx beside MODEL); "
                   "its card goes beside it")
    p.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"],
                   help="how a tensor's range is taken from the calibration frames (default %(default)s)")
    p.add_argument("--ops", default=DEFAULT_OPS, metavar="LIST",
                   help="operator types computed in int8 (default %(default)s); the rest stays float")
    p.add_argument("--keep-float", default="", metavar="NODES",
                   help="comma-separated node names to keep float besides the heads' outputs and decoding")
    p.add_argument("--eval", type=Path, nargs="+", default=[], metavar="MANIFEST",
                   help="labelled manifests (never the calibration ones) on which to measure float and int8 and "
                        "record the change per task in the card")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration draw (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress output")


def calibration_batches(samples: list, width: int, height: int, progress: bool):
    """One letterboxed uint8 frame per batch, as the node makes them, read one at a time."""
    import cv2

    from hydranet_ros.core.progress import show_progress
    from hydranet_ros.runtime.preprocess import make_batch

    for s in show_progress(samples, desc="calibrate", unit="frame", enabled=progress):
        bgr = cv2.imread(str(s.image))
        if bgr is None:
            raise OSError(f"cannot read calibration image {s.image}")
        yield make_batch([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)], width, height)[0]


def compare(float_model: Path, int8_model: Path, manifests: list[Path], progress: bool) -> dict:
    """Each headline metric of both models on `manifests`, and the change."""
    from hydranet_ros.tools.eval import evaluate_model
    from hydranet_ros.train.kinds import flat_metrics

    reports = {name: evaluate_model(m, manifests, progress=progress)
               for name, m in (("float", float_model), ("int8", int8_model))}
    a, b = (flat_metrics(reports[k]["results"]) for k in ("float", "int8"))
    return {"manifests": [str(m) for m in manifests], "images": reports["float"]["images"],
            "ms_per_image": {k: r["ms_per_image"] for k, r in reports.items()},
            "metrics": {k: {"float": round(a[k], 4), "int8": round(b[k], 4), "change": round(b[k] - a[k], 4)}
                        for k in a if k in b}}


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.core.contract import ModelError, read_card, write_card
    from hydranet_ros.core.hashing import sha256_of
    from hydranet_ros.runtime.contract import load_contract
    from hydranet_ros.runtime.quantize import quantize_int8
    from hydranet_ros.train.manifest import ManifestError, read_manifest

    out = args.output or args.model.with_name(f"{args.model.stem}_int8.onnx")
    problems = []
    if args.model.suffix != ".onnx":
        problems.append(f"{args.model} is not an .onnx model: export it first (`hydranet export`)")
    if args.frames < 1:
        problems.append("--frames must be >= 1")
    overlap = {m.resolve() for m in args.calibrate} & {m.resolve() for m in args.eval}
    if overlap:
        problems.append(f"{sorted(map(str, overlap))} both calibrates and evaluates: measure on frames the "
                        "calibration never saw")
    if out.resolve() == args.model.resolve():
        problems.append("the output would overwrite the model")
    if problems:
        print("hydranet quantize: " + "; ".join(problems), file=sys.stderr)
        return 2
    try:
        contract = load_contract(args.model)  # checks its sha256 against the card
        card = read_card(args.model)
        samples = [s for m in args.calibrate for s in read_manifest(m)]
        if not samples:
            raise ManifestError(f"no frames in {', '.join(map(str, args.calibrate))}")
        chosen = random.Random(args.seed).sample(samples, min(args.frames, len(samples)))
        out.parent.mkdir(parents=True, exist_ok=True)
        info = quantize_int8(args.model, out, calibration_batches(chosen, contract.input_width,
                                                                 contract.input_height, not args.no_progress),
                             method=args.method, op_types=[o.strip() for o in args.ops.split(",") if o.strip()],
                             keep_float=[n.strip() for n in args.keep_float.split(",") if n.strip()])
    except (ModelError, ManifestError, OSError, ValueError) as exc:
        print(f"hydranet quantize: {exc}", file=sys.stderr)
        return 2
    provenance = {**card.get("provenance", {}), "quantized_from": {"model": args.model.name,
                                                                   "sha256": sha256_of(args.model)}}
    extra = {k: v for k, v in card.items() if k not in ("model", "sha256", "name", "tasks", "spec", "metrics")}
    extra.update(precision="int8", provenance=provenance, quantization={
        **info, "calibration": {"manifests": [str(m) for m in args.calibrate], "frames": len(chosen),
                                "seed": args.seed, "images": [str(s.image) for s in chosen]}})
    extra["metrics"] = "not measured (hydranet quantize --eval, or bench/quality.py MODEL --card)"
    write_card(out, card["spec"], extra)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB, {info['convolutions_int8']} convolutions int8; "
          f"float: {len(info['kept_float']['head_outputs'])} head outputs and "
          f"{info['kept_float']['decoding_nodes']} decoding nodes) and its card")
    if args.eval:
        try:
            change = compare(args.model, out, args.eval, not args.no_progress)
        except (ModelError, ManifestError, OSError) as exc:
            print(f"hydranet quantize: measuring on {args.eval}: {exc}", file=sys.stderr)
            return 2
        from hydranet_ros.core.contract import record_card_metrics

        record_card_metrics(out, "int8_vs_float", change)
        print(f"\n{'metric':40s} {'float':>8s} {'int8':>8s} {'change':>8s}")
        for k, v in change["metrics"].items():
            print(f"{k:40s} {v['float']:8.4f} {v['int8']:8.4f} {v['change']:+8.4f}")
    return 0
