"""hydranet train CONFIG: train a HydraNet from manifests: checkpoints, logs, plots, and the node's model at the end.

Runs on the CPU, on one GPU (with AMP), or on several through torchrun:
    torchrun --standalone --nproc_per_node 4 -m hydranet_ros.tools.cli train CONFIG
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="training recipe YAML (see config/train/*.yaml)")
    p.add_argument("--out", type=Path, help="run folder (overrides the config's 'out')")
    p.add_argument("--steps", type=int, help="number of optimiser steps (overrides the config)")
    p.add_argument("--batch-size", type=int, help="images per step (overrides the config)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-export", action="store_true", help="do not export model.onnx at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to the run folder)")


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.model.backbones import WeightsError
    from hydranet_ros.model.spec import SpecError
    from hydranet_ros.train.config import ConfigError, load_config
    from hydranet_ros.train.manifest import ManifestError

    try:
        cfg = load_config(args.config, {"out": str(args.out) if args.out else None, "steps": args.steps,
                                        "batch_size": args.batch_size})
        if args.no_export:
            cfg.export = False
        from hydranet_ros.train.trainer import Trainer

        trainer = Trainer(cfg, device=args.device, progress=not args.no_progress)
        if args.resume:
            trainer.resume()
        summary = trainer.fit()
    except (ConfigError, ManifestError, SpecError, WeightsError) as exc:
        print(f"hydranet train: {exc}", file=sys.stderr)
        return 2
    if not trainer.is_main:
        return 0  # under torchrun, rank 0 reports and exports
    print(f"trained {summary['steps']} steps in {summary['elapsed_s'] / 60:.1f} min; run folder {cfg.out}")
    if cfg.export:
        onnx_path = trainer.export()
        print(f"exported {onnx_path} (+ card {onnx_path.with_suffix('.yaml')}); run it with: "
              f"hydranet_node --ros-args -p model:={onnx_path.resolve()}")
    return 0
