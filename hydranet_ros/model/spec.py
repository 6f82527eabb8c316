"""The model spec: what a HydraNet is made of, read from YAML (config/models/*.yaml) and validated.

A spec names the backbone, the decoder width, the input size and the heads (name, type, classes, loss weight
and the head type's own options, core/tasks.py: checked and resolved here, so the spec, the ONNX metadata and the
card carry every option's value, defaults filled in). Adding a task of an existing type is one more entry under `heads`.
Every problem is reported at once, each naming the key it is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hydranet_ros.core.schema import REQUIRED, Field, check
from hydranet_ros.core.tasks import KINDS, OPTIONS
from hydranet_ros.model.backbones import BACKBONES
from hydranet_ros.model.heads import HEADS


def _stride_multiple(v: int) -> str | None:
    return None if v >= 64 and v % 32 == 0 else f"must be a multiple of 32 (the backbone's stride) and >= 64, got {v}"


def _identifier(v: str) -> str | None:
    return None if v.isidentifier() else f"must be an identifier (it names an ONNX output and a topic), got {v!r}"


def _class_names(v: list) -> str | None:
    if not all(c for c in v):
        return f"class names must not be empty, got {v!r}"
    return None if len(set(v)) == len(v) else f"duplicate names in {v}"


# The spec's keys: the README's tables are generated from these (`hydranet train --schema`).
SPEC: tuple[Field, ...] = (
    Field("name", str, "the model's name (cards, reports)", REQUIRED),
    Field("description", str, "free text", ""),
    Field("backbone", str, "the shared encoder", REQUIRED, choices=tuple(sorted(BACKBONES))),
    Field("pretrained_backbone", bool, "start the backbone from its ImageNet weights", True),
    Field("decoder", dict, "the shared decoder: {width: channels}", {}),
    Field("input", dict, "the network input: {width, height} in pixels, multiples of 32", REQUIRED),
    Field("heads", list, "the task heads (table below); one more task is one more entry", REQUIRED),
)
DECODER: tuple[Field, ...] = (Field("width", int, "channels of the decoder's feature map", 256, min=8, max=1024),)
INPUT: tuple[Field, ...] = (
    Field("width", int, "network input width", REQUIRED, rule=_stride_multiple),
    Field("height", int, "network input height", REQUIRED, rule=_stride_multiple),
)
HEAD: tuple[Field, ...] = (
    Field("name", str, "the head's name: its ONNX output, its label key in manifests and its topic", REQUIRED,
          rule=_identifier),
    Field("type", str, "the task kind; its options (below) go beside these keys", REQUIRED, choices=KINDS),
    Field("classes", list, "class names (segmentation: ids 0..N-1 in this order); depth has none", [], item=str,
          rule=_class_names),
    Field("loss_weight", float, "a fixed factor on the head's loss", 1.0, min=0),
)
_HEAD_KEYS = {f.name for f in HEAD}  # all other keys of a head are its kind's options


class SpecError(ValueError):
    """A model spec that cannot be built; the message lists every problem found."""


@dataclass(frozen=True)
class HeadSpec:
    name: str
    type: str
    classes: tuple[str, ...] = ()
    loss_weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    backbone: str
    input_width: int
    input_height: int
    heads: tuple[HeadSpec, ...]
    decoder_width: int = 256
    pretrained_backbone: bool = True
    description: str = ""

    def head(self, name: str) -> HeadSpec:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(f"no head {name!r}; heads: {', '.join(h.name for h in self.heads)}")

    def with_input_size(self, size: str) -> ModelSpec:
        """The same spec at another input size, given as 'WxH' (e.g. from a --size option)."""
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise SpecError(f"size must be WxH, e.g. 640x384, got {size!r}") from None
        doc = self.to_dict()
        doc["input"] = {"width": w, "height": h}
        return ModelSpec.from_dict(doc, source=f"{self.name} at {size}")

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (from_dict(to_dict()) == self); also what travels in the ONNX metadata."""
        heads = []
        for h in self.heads:
            d: dict[str, Any] = {"name": h.name, "type": h.type}
            if h.classes:
                d["classes"] = list(h.classes)
            d["loss_weight"] = h.loss_weight
            d.update(h.options)
            heads.append(d)
        return {
            "name": self.name,
            "description": self.description,
            "backbone": self.backbone,
            "pretrained_backbone": self.pretrained_backbone,
            "decoder": {"width": self.decoder_width},
            "input": {"width": self.input_width, "height": self.input_height},
            "heads": heads,
        }

    @staticmethod
    def from_dict(doc: Any, source: str = "spec") -> ModelSpec:
        top, problems = check(doc, SPEC)
        if not isinstance(doc, dict):
            raise SpecError(f"{source}: {problems[0]}")
        decoder, more = check(top["decoder"], DECODER, "decoder.")
        problems += more
        size, more = check(top["input"], INPUT, "input.") if top["input"] is not None else ({}, [])
        problems += more
        if top["heads"] == []:
            problems.append("heads: at least one head is needed")
        heads: list[HeadSpec] = []
        for i, h in enumerate(top["heads"] or []):
            head, more = ModelSpec._head(h, i)
            problems += more
            if head is not None:
                heads.append(head)
        names = [h.name for h in heads]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"heads: the name {dup!r} is used twice")
        if problems:
            raise SpecError(f"{source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
        return ModelSpec(name=top["name"], backbone=top["backbone"], input_width=size["width"],
                         input_height=size["height"], heads=tuple(heads), decoder_width=decoder["width"],
                         pretrained_backbone=top["pretrained_backbone"], description=top["description"])

    @staticmethod
    def _head(h: Any, i: int) -> tuple[HeadSpec | None, list[str]]:
        """One `heads` entry: its own keys (HEAD), then its kind's options, checked and resolved once here, so
        that every layer reads them with the defaults filled in."""
        if not isinstance(h, dict):
            return None, [f"heads[{i}]: expected a mapping, got {h!r}"]
        name = h.get("name")
        where = f"heads[{i}] ({name})." if isinstance(name, str) else f"heads[{i}]."
        own, problems = check({k: v for k, v in h.items() if k in _HEAD_KEYS}, HEAD, where)
        kind = own["type"]
        if kind in HEADS and HEADS[kind].needs_classes and not own["classes"]:
            problems.append(f"{where}classes: a {kind} head needs at least one class")
        options = {k: v for k, v in h.items() if k not in _HEAD_KEYS}
        if kind in OPTIONS:
            try:
                options = OPTIONS[kind].parse(options).as_dict()
            except ValueError as exc:
                problems.append(f"{where}{exc}")
        if own["name"] is None or kind is None:
            return None, problems
        return HeadSpec(own["name"], kind, tuple(own["classes"]), own["loss_weight"], options), problems


def load_spec(path: str | Path) -> ModelSpec:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read model spec {path}: {exc}") from exc
    return ModelSpec.from_dict(doc, source=str(path))


def spec_from_yaml_text(text: str) -> ModelSpec:
    return ModelSpec.from_dict(yaml.safe_load(text), source="<metadata>")

