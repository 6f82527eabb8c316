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

from hydranet_ros.core.tasks import OPTIONS
from hydranet_ros.model.backbones import BACKBONES
from hydranet_ros.model.heads import HEADS

_TOP_KEYS = {"name", "backbone", "pretrained_backbone", "decoder", "input", "heads", "description"}
_HEAD_KEYS = {"name", "type", "classes", "loss_weight"}  # all other keys of a head are its type's options


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
        problems: list[str] = []
        if not isinstance(doc, dict):
            raise SpecError(f"{source}: expected a mapping with keys {', '.join(sorted(_TOP_KEYS))}")
        for key in sorted(set(doc) - _TOP_KEYS):
            problems.append(f"unknown key {key!r} (known: {', '.join(sorted(_TOP_KEYS))})")

        def need(d: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
            if key not in d:
                problems.append(f"{where}{key}: missing")
                return None
            value = d[key]
            if isinstance(value, bool) and kind in (int, float, (int, float)):
                problems.append(f"{where}{key}: expected a number, got {value!r}")
                return None
            if not isinstance(value, kind):
                names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                problems.append(f"{where}{key}: expected {names}, got {type(value).__name__} {value!r}")
                return None
            return value

        name = need(doc, "name", str, "")
        backbone = need(doc, "backbone", str, "")
        pretrained = doc.get("pretrained_backbone", True)
        if not isinstance(pretrained, bool):
            problems.append(f"pretrained_backbone: expected true or false, got {pretrained!r}")
        if backbone is not None and backbone not in BACKBONES:
            problems.append(f"backbone: unknown {backbone!r} (valid: {', '.join(sorted(BACKBONES))})")

        decoder = doc.get("decoder", {})
        width = 256
        if not isinstance(decoder, dict) or set(decoder) - {"width"}:
            problems.append(f"decoder: expected a mapping with the key 'width', got {decoder!r}")
        elif "width" in decoder:
            width = need(decoder, "width", int, "decoder.")
            if width is not None and not 8 <= width <= 1024:
                problems.append(f"decoder.width: must be 8..1024, got {width}")

        size = need(doc, "input", dict, "")
        in_w = need(size, "width", int, "input.") if size is not None else None
        in_h = need(size, "height", int, "input.") if size is not None else None
        for key, v in (("width", in_w), ("height", in_h)):
            if v is not None and (v < 64 or v % 32):
                problems.append(f"input.{key}: must be a multiple of 32 (the backbone's stride) and >= 64, got {v}")

        heads: list[HeadSpec] = []
        raw_heads = need(doc, "heads", list, "")
        if raw_heads is not None and not raw_heads:
            problems.append("heads: at least one head is needed")
        for i, h in enumerate(raw_heads or []):
            where = f"heads[{i}]."
            if not isinstance(h, dict):
                problems.append(f"heads[{i}]: expected a mapping, got {h!r}")
                continue
            hname = need(h, "name", str, where)
            if hname is not None:
                where = f"heads[{i}] ({hname})."
                if not hname.isidentifier():
                    problems.append(f"{where}name: must be an identifier (it names an ONNX output and a topic)")
            htype = need(h, "type", str, where)
            if htype is not None and htype not in HEADS:
                problems.append(f"{where}type: unknown {htype!r} (valid: {', '.join(sorted(HEADS))})")
            classes = h.get("classes", [])
            if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
                problems.append(f"{where}classes: expected a list of names, got {classes!r}")
                classes = []
            elif len(set(classes)) != len(classes):
                problems.append(f"{where}classes: duplicate names in {classes}")
            if htype in HEADS and HEADS[htype].needs_classes and not classes:
                problems.append(f"{where}classes: a {htype} head needs at least one class")
            weight = h.get("loss_weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                problems.append(f"{where}loss_weight: expected a number >= 0, got {weight!r}")
                weight = 1.0
            options = {k: v for k, v in h.items() if k not in _HEAD_KEYS}
            if htype in OPTIONS:  # checked, and resolved once here: every layer reads the defaults filled in
                try:
                    options = OPTIONS[htype].parse(options).as_dict()
                except ValueError as exc:
                    problems.append(f"{where}{exc}")
            if hname and htype:
                heads.append(HeadSpec(hname, htype, tuple(classes), float(weight), options))
        names = [h.name for h in heads]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"heads: the name {dup!r} is used twice")

        if problems:
            raise SpecError(f"{source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
        return ModelSpec(name=name, backbone=backbone, input_width=in_w, input_height=in_h, heads=tuple(heads),
                         decoder_width=width, pretrained_backbone=pretrained,
                         description=str(doc.get("description", "")))


def load_spec(path: str | Path) -> ModelSpec:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read model spec {path}: {exc}") from exc
    return ModelSpec.from_dict(doc, source=str(path))


def spec_from_yaml_text(text: str) -> ModelSpec:
    return ModelSpec.from_dict(yaml.safe_load(text), source="<metadata>")

