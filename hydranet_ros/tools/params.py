"""hydranet params: the node's parameters, from the schema and config/hydranet.yaml."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--file", type=Path,
                   help="params file to check, applied over the package's config/hydranet.yaml as the node applies "
                        "it (default: check config/hydranet.yaml itself)")
    p.add_argument("--markdown", action="store_true", help="print the README's parameter table")


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.ros import params as P

    path = args.file or P.default_config_path()
    try:
        values = P.load_params_file(P.default_config_path())
        if args.file:
            values.update(P.load_params_file(args.file))
    except P.ParameterError as exc:
        print(f"hydranet params: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        print(P.markdown_table(values))
        return 0
    problems = P.validate(values)
    width = max(len(k) for k in values)
    for k, v in values.items():
        print(f"{k:<{width}}  {v!r}")
    if problems:
        print(f"\n{path}: {len(problems)} problem(s):", file=sys.stderr)
        for why in problems:
            print(f"  - {why}", file=sys.stderr)
        return 2
    print(f"\n{path}: OK ({len(values)} parameters)")
    return 0
