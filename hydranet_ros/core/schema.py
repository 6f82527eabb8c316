"""Declarative validation of the YAML files and parameters users write: the node's parameters (ros/params.py), the
training recipe (train/config.py) and the model spec (model/spec.py). One `Field` per key states its type,
default, bounds, choices and meaning; `check` reports every problem of a mapping at once, each naming its key and
what would be valid; `markdown_table` renders the README's tables from the same fields, so docs and checks cannot
drift apart."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = type("Required", (), {"__repr__": lambda _self: "required"})()  # a field without default


@dataclass(frozen=True)
class Field:
    name: str
    type: type  # bool, int, float, str, list or dict (float accepts integers; no type accepts a bool but bool)
    description: str
    default: Any = None  # REQUIRED: the key must be given
    choices: tuple[Any, ...] = ()  # for a list: the allowed items
    min: float | None = None
    max: float | None = None
    item: type | None = None  # for a list: the type of its items
    rule: Callable[[Any], str | None] | None = None  # a further check: why the value is wrong, or None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable ("must be ..., got ..."), or None when it is."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            return f"must be {self.type.__name__}, got {type(value).__name__} {value!r}"
        if self.type is float and not math.isfinite(value):
            return f"must be finite, got {value!r}"
        if self.type is list:
            item = (int, float) if self.item is float else self.item  # an integer is a float, as for scalars
            if item is not None and not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
                return f"must be a list of {self.item.__name__}, got {value!r}"
            if self.item is float and not all(math.isfinite(v) for v in value):
                return f"must be a list of finite numbers, got {value!r}"
            if self.choices:
                bad = [v for v in value if v not in self.choices]
                if bad or not value or len(set(value)) != len(value):
                    return (f"must be a non-empty list without repeats of {', '.join(map(str, self.choices))}; "
                            f"got {value!r}")
        elif self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}; got {value!r}"
        if self.min is not None and value < self.min:
            return f"must be >= {self.min}, got {value!r}"
        if self.max is not None and value > self.max:
            return f"must be <= {self.max}, got {value!r}"
        return self.rule(value) if self.rule is not None else None

    def coerce(self, value: Any) -> Any:
        """An accepted value in the field's type (an integer given for a float becomes a float)."""
        if self.type is list and self.item is float:
            return [float(v) for v in value]
        return float(value) if self.type is float else value


def check(doc: Any, fields: Sequence[Field], where: str = "") -> tuple[dict[str, Any], list[str]]:
    """Every field's value (the default where the key is absent or null, and where it is wrong) and every problem
    as "where.key: why". An unknown key is a problem that lists the known ones."""
    if not isinstance(doc, dict):
        names = ", ".join(f.name for f in fields)
        return {f.name: None if f.required else f.default for f in fields}, [
            f"{where.rstrip('.') or 'document'}: expected a mapping with keys {names}, got {doc!r}"]
    problems = [f"{where}{key}: unknown key {key!r} (known: {', '.join(sorted(f.name for f in fields))})"
                for key in sorted(set(doc) - {f.name for f in fields}, key=str)]
    values: dict[str, Any] = {}
    for f in fields:
        value = doc.get(f.name)
        if value is None:
            if f.required:
                problems.append(f"{where}{f.name}: missing ({f.description})")
            values[f.name] = None if f.required else f.default
            continue
        why = f.problem(value)
        if why is not None:
            problems.append(f"{where}{f.name}: {why}")
            values[f.name] = None if f.required else f.default
        else:
            values[f.name] = f.coerce(value)
    return values, problems


def _shown(f: Field) -> str:
    if f.required:
        return "required"
    return "–" if f.default is None else f"`{f.default!r}`"


def markdown_table(fields: Sequence[Field], prefix: str = "") -> str:
    """| key | type | default | meaning | — with the choices and bounds stated after the meaning."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in fields:
        allowed = f" ({' / '.join(map(str, f.choices))})" if f.choices else ""
        if f.min is not None or f.max is not None:
            lo = "" if f.min is None else f">= {f.min:g}"
            hi = "" if f.max is None else f"<= {f.max:g}"
            allowed += f" ({', '.join(b for b in (lo, hi) if b)})"
        cells = (f"`{prefix}{f.name}`", f.type.__name__, _shown(f), f"{f.description}{allowed}")
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)
