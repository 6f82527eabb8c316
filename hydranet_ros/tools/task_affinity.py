"""hydranet task-affinity CONFIG: which tasks help each other? Trains each task alone and in pairs (same budget,
same data, same initial weights) and prints the relative gain of each task beside each other task.

    hydranet task-affinity config/train/hydranet_effl0_road.yaml --steps 300 --out runs/affinity

Costs (tasks + pairs) training runs: 4 tasks -> 10 runs. Writes affinity.json and affinity.md in --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="training recipe YAML (its data.val manifests score every run)")
    p.add_argument("--tasks", metavar="LIST", help="comma-separated tasks to compare (default: every head)")
    p.add_argument("--steps", type=int, default=300, metavar="N", help="training steps per run (default %(default)s)")
    p.add_argument("--batch-size", type=int, metavar="N", help="overrides the recipe's batch size")
    p.add_argument("--out", type=Path, default=Path("runs/affinity"), help="folder for the runs and the report")


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.model.spec import SpecError, load_spec
    from hydranet_ros.train.affinity import markdown, run_affinity
    from hydranet_ros.train.config import ConfigError, load_config
    from hydranet_ros.train.manifest import ManifestError
    from hydranet_ros.train.trainer import json_safe

    if args.steps < 1:
        print("hydranet task-affinity: --steps must be >= 1", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, {"batch_size": args.batch_size})
        tasks = ([t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks
                 else [h.name for h in load_spec(cfg.model).heads])
        report = run_affinity(cfg, tasks, args.steps, args.out)
    except (ConfigError, ManifestError, SpecError, ValueError) as exc:
        print(f"hydranet task-affinity: {exc}", file=sys.stderr)
        return 2
    table = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "affinity.json").write_text(json.dumps(json_safe(report), indent=1))
    (args.out / "affinity.md").write_text(table + "\n")
    print(f"\nRelative performance of each task (row) trained beside another (column), {args.steps} steps each:\n")
    print(table)
    print(f"\nwrote {args.out / 'affinity.json'} and {args.out / 'affinity.md'}")
    return 0
