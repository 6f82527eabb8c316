"""hydranet manifest stats|merge|split|dedupe: look at and reshape dataset manifests (JSONL, see train/manifest.py).

    hydranet manifest stats data/*.jsonl
    hydranet manifest merge a.jsonl b.jsonl -o all.jsonl
    hydranet manifest split all.jsonl --every 3 -o train.jsonl --held-out held_out.jsonl
    hydranet manifest split all.jsonl --list config/data/real_heldout.yaml -o train.jsonl --held-out held_out.jsonl
    hydranet manifest dedupe train.jsonl --against held_out.jsonl -o train_clean.jsonl

`dedupe` keeps metrics honest: consecutive video frames and stills cut from the same drive are near-copies, so a
held-out frame must not have a near-twin in training. `split` marks every held-out sample ("held_out": where
it was decided, and with --list its "condition"), and the trainer refuses marked samples, so a held-out frame cannot
reach training by a later merge or pseudo-label step either.
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
    how = sp.add_mutually_exclusive_group(required=True)
    how.add_argument("--every", type=int, metavar="N",
                     help="every N-th sample (in manifest order, starting at --offset) goes to the held-out set")
    how.add_argument("--list", type=Path, metavar="YAML",
                     help="held-out frames by condition: {condition: [file-name patterns]} (fnmatch on the image's "
                          "file name); each held-out sample records its condition for per-condition reports")
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


def split_by_list(samples: list, list_file: Path) -> tuple[list, list]:
    """(held out, train): samples whose image file name matches a pattern of `list_file`, tagged with condition."""
    import fnmatch

    import yaml

    from hydranet_ros.train.manifest import HELD_OUT_KEY, ManifestError

    try:
        doc = yaml.safe_load(list_file.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"{list_file}: not YAML ({exc})") from exc
    if not isinstance(doc, dict) or not all(isinstance(v, list) and all(isinstance(p, str) for p in v)
                                            for v in doc.values()):
        raise ManifestError(f"{list_file}: expected {{condition: [file-name patterns]}}")
    held, train, used = [], [], set()
    for s in samples:
        hits = [(c, p) for c, patterns in doc.items() for p in patterns if fnmatch.fnmatch(Path(s.image).name, p)]
        if not hits:
            train.append(s)
            continue
        if len({c for c, _ in hits}) > 1:
            raise ManifestError(f"{s.image} matches patterns of several conditions: {hits}")
        used.update(p for _, p in hits)
        s.extra.update({HELD_OUT_KEY: list_file.name, "condition": str(hits[0][0])})
        held.append(s)
    unused = [p for v in doc.values() for p in v if p not in used]
    if unused:  # a typo would silently train on a frame meant to be held out
        raise ManifestError(f"{list_file}: no frame of the manifest matches {', '.join(unused)}")
    return held, train


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.train.manifest import HELD_OUT_KEY, ManifestError, read_manifest, write_manifest

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
            samples = read_manifest(args.manifest)
            if args.list is not None:
                held, train = split_by_list(samples, args.list)
            else:
                if args.every < 2 or not 0 <= args.offset < args.every:
                    print("hydranet manifest split: need --every >= 2 and 0 <= --offset < --every", file=sys.stderr)
                    return 2
                held = [s for i, s in enumerate(samples) if i % args.every == args.offset]
                train = [s for i, s in enumerate(samples) if i % args.every != args.offset]
                for s in held:
                    s.extra[HELD_OUT_KEY] = f"{args.manifest.name}: every {args.every} from {args.offset}"
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
