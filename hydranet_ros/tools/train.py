"""hydranet train CONFIG: train a HydraNet from manifests: checkpoints, logs, plots, and the node's model at the end.

Runs on the CPU, on one GPU (with AMP), or on several through torchrun:
    torchrun --standalone --nproc_per_node 4 -m hydranet_ros.tools.cli train CONFIG
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, nargs="?", help="training recipe YAML (see config/train/*.yaml)")
    p.add_argument("--out", type=Path, help="run folder (overrides the config's 'out')")
    p.add_argument("--steps", type=int, help="number of optimiser steps (overrides the config)")
    p.add_argument("--batch-size", type=int, help="images per step (overrides the config)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-export", action="store_true", help="do not export model.onnx at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to the run folder)")
    p.add_argument("--schema", action="store_true",
                   help="print every key of a recipe and of a model spec, with defaults (the README's tables)")


def reference_markdown() -> str:
    """The README's recipe and spec reference, from the schemas the recipe and spec are checked against."""
    import dataclasses

    from hydranet_ros.core.schema import markdown_table
    from hydranet_ros.core.tasks import OPTIONS
    from hydranet_ros.model import spec
    from hydranet_ros.train import config

    rows = ["| kind | option | default | meaning |", "|---|---|---|---|"]
    for kind, options in OPTIONS.items():
        for f in dataclasses.fields(options):
            rows.append(f"| {kind} | `{f.name}` | `{f.default!r}` | {options.docs[f.name]} |")
    parts = [("Recipe (`hydranet train RECIPE`)", markdown_table(config.RECIPE)),
             ("Recipe `data:`", markdown_table(config.DATA, "data.")),
             ("Recipe `optimizer:`", markdown_table(config.OPTIMIZER, "optimizer.")),
             ("Model spec (`model:` of a recipe)", markdown_table(spec.SPEC)),
             ("Spec `input:` and `decoder:`", markdown_table(spec.INPUT, "input.") + "\n"
              + "\n".join(markdown_table(spec.DECODER, "decoder.").splitlines()[2:])),
             ("Spec `heads:` entries", markdown_table(spec.HEAD)),
             ("Head options, per kind (beside a head's own keys)", "\n".join(rows))]
    return "\n\n".join(f"**{title}**\n\n{table}" for title, table in parts)


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.model.backbones import WeightsError
    from hydranet_ros.model.spec import SpecError
    from hydranet_ros.train.config import ConfigError, load_config
    from hydranet_ros.train.manifest import ManifestError

    if args.schema:
        print(reference_markdown())
        return 0
    if args.config is None:
        print("hydranet train: a recipe is needed (or --schema)", file=sys.stderr)
        return 2
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
