"""The training recipe: one YAML file, validated up front so that a typo fails in the first second, not after an hour.

    model: ../models/hydranet_effl0_road.yaml   # the spec (paths are relative to this file, else to the cwd)
    init: null                                   # optional weights to start from (.safetensors)
    data:
      train:                                     # manifests and their share of each batch (weights are relative)
        - {manifest: runs/data/sim_train.jsonl, weight: 1.0}
        - {manifest: runs/data/real_pseudo.jsonl, weight: 1.0}
      val: [runs/data/sim_val.jsonl]
      held_out: [runs/data/kitti_val.jsonl]      # evaluation frames: training refuses any image whose bytes match
      crop: [320, 192]                           # training crop (W, H); null = the spec's full input size
      augment: {scale: [0.75, 1.33], flip: true, colour: 0.3, roll_deg: 2,
                weather: {night: 0.2, fog: 0.1, glare: 0.1, rain: 0.1, blur: 0.1, noise: 0.2}}
    steps: 2000
    batch_size: 8
    optimizer: {lr: 0.002, backbone_lr: 0.0005, weight_decay: 0.0001, warmup_steps: 100}  # AdamW, cosine decay
    losses:                                      # per task: the loss kind and its options
      drivable_area: {kind: focal}
      depth: {kind: silog}
    weighting: {name: uncertainty}               # fixed | uncertainty | dwa | gradnorm (+ options)
    pcgrad: false
    freeze:                                      # staged freezing: parts frozen until a step
      - {parts: [backbone], until: 200}
    amp: auto                                    # auto: on with CUDA, off on CPU
    workers: 1
    eval_every: 500
    checkpoint_every: 250
    log_every: 10
    seed: 0
    out: runs/default
    export: true                                 # write the node's model + card at the end
    export_path: null                            # where (default: out/model.onnx)
    export_weights: best                         # best (by the val score) or last (the end of the schedule)
    card: {licences: ...}                        # free-form notes copied into the exported model's card
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hydranet_ros.train.balancing import WEIGHTINGS

FREEZABLE = ("backbone", "decoder", "heads")
_TOP = {"model", "init", "data", "steps", "batch_size", "optimizer", "losses", "weighting", "pcgrad", "freeze",
        "amp", "workers", "eval_every", "checkpoint_every", "log_every", "seed", "out", "export", "threads",
        "export_path", "export_weights", "card"}
_DATA = {"train", "val", "held_out", "crop", "augment"}
_OPT = {"lr", "backbone_lr", "weight_decay", "warmup_steps"}


class ConfigError(ValueError):
    """A training config that cannot run; the message lists every problem."""


@dataclass
class TrainConfig:
    path: Path
    model: Path
    train: list[tuple[Path, float]]
    val: list[Path] = field(default_factory=list)
    held_out: list[Path] = field(default_factory=list)
    init: Path | None = None
    crop: tuple[int, int] | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    steps: int = 1000
    batch_size: int = 8
    lr: float = 2e-3
    backbone_lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    losses: dict[str, dict[str, Any]] = field(default_factory=dict)
    weighting: dict[str, Any] = field(default_factory=lambda: {"name": "uncertainty"})
    pcgrad: bool = False
    freeze: list[dict[str, Any]] = field(default_factory=list)
    amp: str = "auto"
    workers: int = 1
    threads: int = 0
    eval_every: int = 500
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0
    out: Path = Path("runs/train")
    export: bool = True
    export_path: Path | None = None
    export_weights: str = "best"
    card: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def frozen_parts(self, step: int) -> set[str]:
        return {p for stage in self.freeze if step < stage["until"] for p in stage["parts"]}


def _path(value: Any, base: Path) -> Path:
    p = Path(str(value))
    if p.is_absolute():
        return p
    return base / p if (base / p).exists() else p


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a training config; `overrides` (e.g. from the command line) replace top-level keys."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read training config {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping")
    doc.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return parse_config(doc, path)


def parse_config(doc: dict[str, Any], path: Path) -> TrainConfig:
    base = path.parent
    problems: list[str] = []
    for key in sorted(set(doc) - _TOP):
        problems.append(f"unknown key {key!r} (known: {', '.join(sorted(_TOP))})")

    def number(d: dict, key: str, default: Any, kind: type, minimum: float, where: str = "") -> Any:
        v = d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
            problems.append(f"{where}{key}: expected {'an integer' if kind is int else 'a number'}, got {v!r}")
            return default
        if v < minimum:
            problems.append(f"{where}{key}: must be >= {minimum}, got {v}")
        return kind(v)

    if "model" not in doc:
        problems.append("model: missing (the model spec YAML)")
    model = _path(doc.get("model", ""), base)
    if "model" in doc and not model.is_file():
        problems.append(f"model: spec {model} does not exist")

    data = doc.get("data")
    train: list[tuple[Path, float]] = []
    val: list[Path] = []
    held_out: list[Path] = []
    crop = None
    augment: dict[str, Any] = {}
    if not isinstance(data, dict):
        problems.append("data: missing (train manifests, optional val manifests, crop, augment)")
    else:
        for key in sorted(set(data) - _DATA):
            problems.append(f"data.{key}: unknown (known: {', '.join(sorted(_DATA))})")
        entries = data.get("train")
        if not isinstance(entries, list) or not entries:
            problems.append("data.train: needs a list of manifests ({manifest: PATH, weight: W} or PATH)")
            entries = []
        for e in entries:
            m, w = (e.get("manifest"), e.get("weight", 1.0)) if isinstance(e, dict) else (e, 1.0)
            if not isinstance(m, str) or isinstance(w, bool) or not isinstance(w, (int, float)) or w <= 0:
                problems.append(f"data.train: bad entry {e!r} (manifest path and a weight > 0)")
                continue
            train.append((_path(m, base), float(w)))
        for m in data.get("val") or []:
            val.append(_path(m, base))
        held_out = [_path(m, base) for m in data.get("held_out") or []]
        for p in [t for t, _ in train] + val + held_out:
            if not p.is_file():
                problems.append(f"data: manifest {p} does not exist")
        if data.get("crop") is not None:
            c = data["crop"]
            if not (isinstance(c, list) and len(c) == 2 and all(isinstance(v, int) and v > 0 and v % 32 == 0
                                                               for v in c)):
                problems.append(f"data.crop: expected [W, H], multiples of 32, got {c!r}")
            else:
                crop = (c[0], c[1])
        augment = data.get("augment") or {}
        keys = {"scale", "flip", "colour", "hue_deg", "roll_deg", "weather", "focus"}
        if not isinstance(augment, dict) or set(augment) - keys:
            problems.append(f"data.augment: expected keys {', '.join(sorted(keys))}; got {augment!r}")
            augment = {}
        else:
            try:
                from hydranet_ros.train.data import Augment

                Augment.from_dict(augment)
            except (TypeError, ValueError) as exc:
                problems.append(f"data.augment: {exc}")
                augment = {}

    opt = doc.get("optimizer") or {}
    if not isinstance(opt, dict):
        problems.append("optimizer: expected a mapping")
        opt = {}
    for key in sorted(set(opt) - _OPT):
        problems.append(f"optimizer.{key}: unknown (known: {', '.join(sorted(_OPT))})")

    weighting = doc.get("weighting") or {"name": "uncertainty"}
    if isinstance(weighting, str):
        weighting = {"name": weighting}
    if not isinstance(weighting, dict) or weighting.get("name") not in WEIGHTINGS:
        problems.append(f"weighting.name: one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        weighting = {"name": "uncertainty"}

    freeze = doc.get("freeze") or []
    for stage in freeze if isinstance(freeze, list) else [freeze]:
        ok = (isinstance(stage, dict) and isinstance(stage.get("parts"), list)
              and all(p in FREEZABLE for p in stage["parts"]) and isinstance(stage.get("until"), int))
        if not ok:
            problems.append(f"freeze: each stage is {{parts: [{'|'.join(FREEZABLE)}], until: STEP}}, got {stage!r}")
    losses = doc.get("losses") or {}
    if not isinstance(losses, dict) or not all(isinstance(v, dict) for v in losses.values()):
        problems.append("losses: expected {task: {kind: ..., options}}")
        losses = {}
    amp = str(doc.get("amp", "auto"))
    if amp not in ("auto", "on", "off", "True", "False"):
        problems.append(f"amp: auto, on or off, got {amp!r}")

    cfg = TrainConfig(
        path=path, model=model, train=train, val=val, held_out=held_out, crop=crop, augment=augment,
        init=_path(doc["init"], base) if doc.get("init") else None,
        steps=number(doc, "steps", 1000, int, 1),
        batch_size=number(doc, "batch_size", 8, int, 1),
        lr=number(opt, "lr", 2e-3, float, 0, "optimizer."),
        backbone_lr=number(opt, "backbone_lr", opt.get("lr", 2e-3) / 4 if isinstance(opt.get("lr"), (int, float))
                           else 5e-4, float, 0, "optimizer."),
        weight_decay=number(opt, "weight_decay", 1e-4, float, 0, "optimizer."),
        warmup_steps=number(opt, "warmup_steps", 100, int, 0, "optimizer."),
        losses=losses, weighting=dict(weighting), pcgrad=bool(doc.get("pcgrad", False)),
        freeze=freeze if isinstance(freeze, list) else [freeze],
        amp={"True": "on", "False": "off"}.get(amp, amp),
        workers=number(doc, "workers", 1, int, 0), threads=number(doc, "threads", 0, int, 0),
        eval_every=number(doc, "eval_every", 500, int, 1),
        checkpoint_every=number(doc, "checkpoint_every", 250, int, 1),
        log_every=number(doc, "log_every", 10, int, 1), seed=number(doc, "seed", 0, int, 0),
        out=Path(str(doc.get("out", "runs/train"))), export=bool(doc.get("export", True)), raw=doc,
        export_path=Path(str(doc["export_path"])) if doc.get("export_path") else None,
        export_weights=str(doc.get("export_weights", "best")),
        card=doc.get("card") if isinstance(doc.get("card"), dict) else {},
    )
    if doc.get("card") is not None and not isinstance(doc.get("card"), dict):
        problems.append("card: expected a mapping of notes for the model card")
    if cfg.export_weights not in ("best", "last"):
        problems.append(f"export_weights: best or last, got {cfg.export_weights!r}")
    if cfg.init is not None and not cfg.init.is_file():
        problems.append(f"init: weights {cfg.init} do not exist")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return cfg
