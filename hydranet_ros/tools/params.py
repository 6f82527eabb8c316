"""hydranet params: the node's parameters, from the schema and config/hydranet.yaml."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--file", type=Path, action="append", default=[], metavar="FILE",
                   help="params file to check, applied over the package's config/hydranet.yaml as the node applies "
                        "it; repeat for several files (later ones win, as with several --params-file). It passes "
                        "here exactly when hydranet_node accepts it. Default: check config/hydranet.yaml itself")
    p.add_argument("--markdown", action="store_true", help="print the README's parameter table")


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.ros import params as P

    files = args.file or [P.default_config_path()]
    try:
        defaults = P.load_params_file(P.default_config_path())
        given = dict(defaults)
        for f in args.file:
            given.update(P.load_params_file(f))
    except P.ParameterError as exc:
        print(f"hydranet params: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        print(P.markdown_table(defaults))
        return 0
    values, problems = P.resolve(given, ignorable=set(defaults))
    names = ", ".join(str(f) for f in files)
    if values:
        width = max(len(k) for k in values)
        for k, v in values.items():
            print(f"{k:<{width}}  {v!r}")
    if problems:
        print(f"\n{names}: {len(problems)} problem(s):", file=sys.stderr)
        for why in problems:
            print(f"  - {why}", file=sys.stderr)
        return 2
    print(f"\n{names}: OK ({len(values)} parameters)")
    return 0
