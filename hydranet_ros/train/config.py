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

from hydranet_ros.core.schema import REQUIRED, Field, check
from hydranet_ros.train.balancing import WEIGHTINGS

FREEZABLE = ("backbone", "decoder", "heads")


def _manifest_entries(entries: list) -> str | None:
    for e in entries:
        m, w = (e.get("manifest"), e.get("weight", 1.0)) if isinstance(e, dict) else (e, 1.0)
        if not isinstance(m, str) or isinstance(w, bool) or not isinstance(w, (int, float)) or w <= 0:
            return f"bad entry {e!r} (a manifest path, or {{manifest: PATH, weight: W > 0}})"
    return None if entries else "needs at least one manifest"


def _paths(entries: list) -> str | None:
    return None if all(isinstance(e, str) for e in entries) else f"must be a list of manifest paths, got {entries!r}"


def _crop(c: list) -> str | None:
    ok = len(c) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % 32 == 0 for v in c)
    return None if ok else f"expected [W, H], multiples of 32, got {c!r}"


def _augment(doc: dict) -> str | None:
    import dataclasses

    from hydranet_ros.train.augment import Augment

    known = [f.name for f in dataclasses.fields(Augment)]
    if set(doc) - set(known):
        return f"unknown key(s) {sorted(set(doc) - set(known))} (known: {', '.join(known)})"
    try:
        Augment.from_dict(doc)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _weighting(doc: dict) -> str | None:
    return None if doc.get("name") in WEIGHTINGS else f"needs a name, one of {', '.join(WEIGHTINGS)}; got {doc!r}"


def _freeze(stages: list) -> str | None:
    for stage in stages:
        if not (isinstance(stage, dict) and isinstance(stage.get("parts"), list)
                and all(p in FREEZABLE for p in stage["parts"]) and isinstance(stage.get("until"), int)):
            return f"each stage is {{parts: [{'|'.join(FREEZABLE)}], until: STEP}}, got {stage!r}"
    return None


def _losses(doc: dict) -> str | None:
    return None if all(isinstance(v, dict) for v in doc.values()) else "expected {task: {kind: ..., options}}"


# The recipe's keys: the README's tables are generated from these (`hydranet train --schema`).
RECIPE: tuple[Field, ...] = (
    Field("model", str, "the model spec YAML (paths are relative to the recipe, else to the working directory)",
          REQUIRED),
    Field("init", str, "weights to start from (.safetensors), e.g. an earlier stage's checkpoint"),
    Field("data", dict, "the manifests and the augmentation (table below)", REQUIRED),
    Field("steps", int, "optimiser steps", 1000, min=1),
    Field("batch_size", int, "images per step", 8, min=1),
    Field("optimizer", dict, "AdamW with warm-up and cosine decay (table below)", {}),
    Field("losses", dict, "per task: its loss kind and options, e.g. {depth: {kind: silog}}", {}, rule=_losses),
    Field("weighting", dict, "task weighting: {name: fixed, uncertainty, dwa or gradnorm, ...its options}",
          {"name": "uncertainty"}, rule=_weighting),
    Field("pcgrad", bool, "project conflicting task gradients (PCGrad) on the shared layers", False),
    Field("freeze", list, "staged freezing: [{parts: [backbone, decoder, heads], until: STEP}], each part frozen "
          "until its step", [], rule=_freeze),
    Field("amp", str, "mixed precision; auto: on with CUDA, off on the CPU", "auto", choices=("auto", "on", "off")),
    Field("workers", int, "data-loading processes", 1, min=0),
    Field("threads", int, "torch CPU threads; 0: torch's default", 0, min=0),
    Field("eval_every", int, "validate every this many steps", 500, min=1),
    Field("checkpoint_every", int, "save a resumable checkpoint every this many steps", 250, min=1),
    Field("log_every", int, "log a row every this many steps", 10, min=1),
    Field("seed", int, "random seed of weights, sampling and augmentation", 0, min=0),
    Field("out", str, "run folder (checkpoints, logs, plots)", "runs/train"),
    Field("export", bool, "write the node's model (ONNX) and its card at the end", True),
    Field("export_path", str, "where to export; default: OUT/model.onnx"),
    Field("export_weights", str, "which weights to export: best (by the validation score) or last", "best",
          choices=("best", "last")),
    Field("card", dict, "free-form notes (licences, held-out data) copied into the exported model's card", {}),
)
DATA: tuple[Field, ...] = (
    Field("train", list, "training manifests and their share of each batch: [PATH or {manifest: PATH, weight: W}]",
          REQUIRED, rule=_manifest_entries),
    Field("val", list, "validation manifests (checkpoint selection)", [], rule=_paths),
    Field("held_out", list, "evaluation manifests: the trainer refuses any training image among them", [],
          rule=_paths),
    Field("crop", list, "training crop [W, H], multiples of 32; default: the spec's full input size", rule=_crop),
    Field("augment", dict, "scale, flip, colour, hue_deg, roll_deg, weather, focus (train/augment.py)", {},
          rule=_augment),
)
OPTIMIZER: tuple[Field, ...] = (
    Field("lr", float, "peak learning rate of the decoder and heads", 2e-3, min=0),
    Field("backbone_lr", float, "peak learning rate of the backbone; default: lr / 4", min=0),
    Field("weight_decay", float, "AdamW weight decay", 1e-4, min=0),
    Field("warmup_steps", int, "linear warm-up steps before the cosine decay", 100, min=0),
)


class ConfigError(ValueError):
    """A training config that cannot run; the message lists every problem."""


@dataclass
class TrainConfig:
    """A checked recipe. The defaults live in RECIPE, DATA and OPTIMIZER (parse_config fills every field), so
    that the README's tables, the checks and the values cannot disagree."""

    path: Path
    model: Path
    train: list[tuple[Path, float]]
    val: list[Path]
    held_out: list[Path]
    init: Path | None
    crop: tuple[int, int] | None
    augment: dict[str, Any]
    steps: int
    batch_size: int
    lr: float
    backbone_lr: float
    weight_decay: float
    warmup_steps: int
    losses: dict[str, dict[str, Any]]
    weighting: dict[str, Any]
    pcgrad: bool
    freeze: list[dict[str, Any]]
    amp: str
    workers: int
    threads: int
    eval_every: int
    checkpoint_every: int
    log_every: int
    seed: int
    out: Path
    export: bool
    export_path: Path | None
    export_weights: str
    card: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)  # the recipe as written (recorded in the run and the card)

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
    doc = dict(doc)
    if isinstance(doc.get("weighting"), str):
        doc["weighting"] = {"name": doc["weighting"]}
    if isinstance(doc.get("amp"), bool):  # YAML reads a bare on / off as a boolean
        doc["amp"] = "on" if doc["amp"] else "off"
    if isinstance(doc.get("freeze"), dict):
        doc["freeze"] = [doc["freeze"]]
    top, problems = check(doc, RECIPE)
    data, more = check(top["data"] if top["data"] is not None else {}, DATA, "data.")
    problems += more if top["data"] is not None else []
    opt, more = check(top["optimizer"], OPTIMIZER, "optimizer.")
    problems += more

    model = _path(top["model"] or "", base)
    if top["model"] is not None and not model.is_file():
        problems.append(f"model: spec {model} does not exist")
    train = [(_path(m, base), float(w)) for m, w in
             ((e.get("manifest"), e.get("weight", 1.0)) if isinstance(e, dict) else (e, 1.0)
              for e in data["train"] or [])]
    val = [_path(m, base) for m in data["val"]]
    held_out = [_path(m, base) for m in data["held_out"]]
    problems += [f"data: manifest {p} does not exist" for p in [t for t, _ in train] + val + held_out
                 if not p.is_file()]
    init = _path(top["init"], base) if top["init"] else None
    if init is not None and not init.is_file():
        problems.append(f"init: weights {init} do not exist")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return TrainConfig(
        path=path, model=model, train=train, val=val, held_out=held_out, init=init,
        crop=tuple(data["crop"]) if data["crop"] else None, augment=data["augment"],
        steps=top["steps"], batch_size=top["batch_size"],
        lr=opt["lr"], backbone_lr=opt["backbone_lr"] if opt["backbone_lr"] is not None else opt["lr"] / 4,
        weight_decay=opt["weight_decay"], warmup_steps=opt["warmup_steps"],
        losses=top["losses"], weighting=dict(top["weighting"]), pcgrad=top["pcgrad"], freeze=top["freeze"],
        amp=top["amp"], workers=top["workers"], threads=top["threads"], eval_every=top["eval_every"],
        checkpoint_every=top["checkpoint_every"], log_every=top["log_every"], seed=top["seed"],
        out=Path(top["out"]), export=top["export"],
        export_path=Path(top["export_path"]) if top["export_path"] else None,
        export_weights=top["export_weights"], card=top["card"], raw=doc,
    )
