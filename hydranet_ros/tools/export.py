"""hydranet export SPEC [--weights W] -o OUT.onnx: one fused ONNX graph for every head, and its model card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="model spec YAML (config/models/*.yaml)")
    p.add_argument("--weights", type=Path, help="trained weights (.safetensors, or a torch state dict); "
                   "default: the spec's initial weights (ImageNet backbone, untrained heads)")
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write; the card goes beside it")
    p.add_argument("--size", help="input size WxH overriding the spec's (multiples of 32)")


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.model.backbones import WeightsError
    from hydranet_ros.model.export import export_onnx
    from hydranet_ros.model.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
        if args.size:
            spec = spec.with_input_size(args.size)
        out = export_onnx(spec, args.output, weights=args.weights)
    except (SpecError, ValueError, WeightsError, OSError) as exc:
        print(f"hydranet export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {out.with_suffix('.yaml')}")
    return 0
