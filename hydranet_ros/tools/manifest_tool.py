"""hydranet manifest stats|merge|split|dedupe: look at and reshape dataset manifests (JSONL, see train/manifest.py).

    hydranet manifest stats data/*.jsonl
    hydranet manifest merge a.jsonl b.jsonl -o all.jsonl
    hydranet manifest split all.jsonl --every 3 -o train.jsonl --held-out held_out.jsonl
    hydranet manifest dedupe train.jsonl --against held_out.jsonl -o train_clean.jsonl

`dedupe` keeps metrics honest: consecutive video frames and stills cut from the same drive are near-copies, so a
held-out frame must not have a near-twin in training.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("stats", help="images, labels per task and boxes per class of manifests")
    s.add_argument("manifests", nargs="+", type=Path)
    m = sub.add_parser("merge", help="concatenate manifests into one")
    m.add_argument("manifests", nargs="+", type=Path)
    m.add_argument("-o", "--output", type=Path, required=True)
    sp = sub.add_parser("split", help="deterministic split into training and held-out frames")
    sp.add_argument("manifest", type=Path)
    sp.add_argument("--every", type=int, required=True, metavar="N",
                    help="every N-th sample (in manifest order, starting at --offset) goes to the held-out set")
    sp.add_argument("--offset", type=int, default=0, metavar="K")
    sp.add_argument("-o", "--output", type=Path, required=True, help="the training manifest to write")
    sp.add_argument("--held-out", type=Path, required=True, help="the held-out manifest to write")
    d = sub.add_parser("dedupe", help="drop samples that are near-copies of another manifest's frames")
    d.add_argument("manifest", type=Path)
    d.add_argument("--against", nargs="+", type=Path, required=True, metavar="MANIFEST")
    d.add_argument("-o", "--output", type=Path, required=True)
    d.add_argument("--max-diff", type=float, default=8.0, metavar="GREY",
                   help="near-copy: mean absolute difference of 64x36 grey thumbnails below this (0-255; "
                        "default %(default)s; unrelated driving frames differ by 25+)")


def thumbnail(path: Path):
    import cv2
    import numpy as np

    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise OSError(f"cannot read image {path}")
    return cv2.resize(grey, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32)


def near_copies(samples: list, against: list, max_diff: float) -> list[tuple[int, str, float]]:
    """(index in samples, the reference image it copies, difference) for each near-copy."""
    import numpy as np

    ref = np.stack([thumbnail(s.image) for s in against]) if against else np.zeros((0, 36, 64), np.float32)
    found = []
    for i, s in enumerate(samples):
        if not len(ref):
            break
        diff = np.abs(ref - thumbnail(s.image)).mean(axis=(1, 2))
        j = int(diff.argmin())
        if diff[j] < max_diff:
            found.append((i, str(against[j].image), float(diff[j])))
    return found


def stats(samples: list) -> str:
    tasks: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for s in samples:
        sources[s.source or "?"] += 1
        for task, label in s.labels.items():
            tasks[task] += 1
            for b in label.get("boxes", []):
                classes[b[4]] += 1
    lines = [f"{len(samples)} images; sources: " + ", ".join(f"{k} {v}" for k, v in sources.most_common())]
    lines += [f"  {t}: {n} labelled" for t, n in sorted(tasks.items())]
    if classes:
        lines.append("  boxes: " + ", ".join(f"{k} {v}" for k, v in classes.most_common()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.train.manifest import ManifestError, read_manifest, write_manifest

    try:
        if args.action == "stats":
            for m in args.manifests:
                print(f"{m}: {stats(read_manifest(m))}")
            return 0
        if args.action == "merge":
            samples = [s for m in args.manifests for s in read_manifest(m)]
            n = write_manifest(args.output, samples)
            print(f"wrote {args.output}: {stats(samples)}")
            return 0 if n else 2
        if args.action == "split":
            if args.every < 2 or not 0 <= args.offset < args.every:
                print("hydranet manifest split: need --every >= 2 and 0 <= --offset < --every", file=sys.stderr)
                return 2
            samples = read_manifest(args.manifest)
            held = [s for i, s in enumerate(samples) if i % args.every == args.offset]
            train = [s for i, s in enumerate(samples) if i % args.every != args.offset]
            write_manifest(args.output, train)
            write_manifest(args.held_out, held)
            print(f"{args.output}: {len(train)} images; {args.held_out}: {len(held)} images")
            return 0
        samples = read_manifest(args.manifest)
        against = [s for m in args.against for s in read_manifest(m)]
        dropped = near_copies(samples, against, args.max_diff)
        for i, ref, diff in dropped:
            print(f"  drop {samples[i].image} (near-copy of {ref}, difference {diff:.1f})")
        gone = {i for i, _, _ in dropped}
        write_manifest(args.output, [s for i, s in enumerate(samples) if i not in gone])
        print(f"{args.output}: kept {len(samples) - len(gone)} of {len(samples)} images")
        return 0
    except (ManifestError, OSError) as exc:
        print(f"hydranet manifest: {exc}", file=sys.stderr)
        return 2
