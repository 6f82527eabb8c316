"""The model contract: what a model file promises (input size, tasks, outputs), checked before anything runs it.
The one reader and writer of model cards and of the ONNX metadata.

An exported `.onnx` carries its contract in the metadata key `hydranet` and has a card `<model>.yaml` beside it
holding the file's sha256. A torch checkpoint (.safetensors, .pt, .pth) has a card `<checkpoint>.yaml` (e.g.
`best.safetensors.yaml`) written by `write_card`, holding its sha256 and spec. Either way the runtime
refuses a file whose hash does not match its card: a half-copied or swapped model must not drive a vehicle.

No torch here: a checkpoint's contract needs the network built (runtime/contract.py, `load_contract`); an ONNX
model's is read here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hydranet_ros.core.hashing import sha256_of
from hydranet_ros.core.tasks import KINDS, OPTIONS

METADATA_KEY = "hydranet"  # the ONNX metadata_props key holding the contract (JSON)
DEFAULT_MODEL = "hydranet_effl0_road.onnx"
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
EXPORT_HINT = "export one with `hydranet export SPEC -o PATH` (e.g. config/models/hydranet_effl0_road.yaml)"


class ModelError(RuntimeError):
    """A model file that cannot be used; the message says which file and why, and what to do."""


@dataclass(frozen=True)
class Task:
    name: str  # head name == output name
    type: str  # one of core.tasks.KINDS
    classes: tuple[str, ...]
    options: dict[str, Any]  # the head's options, defaults filled in (also for a model whose spec predates that)


@dataclass(frozen=True)
class ModelContract:
    path: Path
    sha256: str
    name: str  # spec name
    input_width: int
    input_height: int
    canonical_fx: float | None  # of the depth head, None without one
    tasks: tuple[Task, ...]  # in spec order
    outputs: dict[str, dict[str, Any]]  # output name -> dtype, shape, kind, head, classes, units, ...
    spec: dict[str, Any]  # the spec dict (ModelSpec.from_dict rebuilds it)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r} in {self.path.name}; tasks: {', '.join(t.name for t in self.tasks)}")

    def tasks_of_type(self, type: str) -> list[Task]:
        return [t for t in self.tasks if t.type == type]


def card_path(model_path: Path) -> Path:
    """`model.onnx` -> `model.yaml` (as export writes it); `best.safetensors` -> `best.safetensors.yaml`, so that a
    checkpoint's card never overwrites the card of an ONNX exported from it into the same folder."""
    model_path = Path(model_path)
    if model_path.suffix in CHECKPOINT_SUFFIXES:
        return model_path.with_name(model_path.name + ".yaml")
    return model_path.with_suffix(".yaml")


def read_card(model_path: Path) -> dict[str, Any]:
    path = card_path(model_path)
    if not path.is_file():
        raise ModelError(f"no model card {path} beside {model_path}: the card (sha256, tasks, spec) travels with the "
                         f"model; copy it along, or {EXPORT_HINT}")
    try:
        card = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read model card {path}: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelError(f"model card {path} is not a mapping (got {type(card).__name__})")
    return card


def write_card(model_path: Path, spec_dict: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write the card beside `model_path` (an exported .onnx or a checkpoint): its file name and sha256, the spec's
    name and tasks, then `extra` (description, input, outputs, provenance, metrics, ...), then the spec itself."""
    model_path = Path(model_path)
    card: dict[str, Any] = {
        "model": model_path.name,
        "sha256": sha256_of(model_path),
        "name": spec_dict.get("name"),
        "tasks": [{"name": h.get("name"), "type": h.get("type"), "classes": list(h.get("classes", []))}
                  for h in spec_dict.get("heads", [])],
        **(extra or {}),
    }
    card["spec"] = spec_dict
    return _write_yaml(card_path(model_path), card)


def record_card_metrics(model_path: Path, key: str, entry: dict[str, Any]) -> Path:
    """Set metrics.<key> in a model's card. The model file, and so the card's sha256 of it, stay unchanged."""
    card = read_card(model_path)
    if not isinstance(card.get("metrics"), dict):
        card["metrics"] = {}  # an untrained export says "not measured"
    card["metrics"][key] = entry
    return _write_yaml(card_path(model_path), card)


def _write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=110))
    return path


def default_model_path() -> Path:
    """The default model of the source tree, else of the installed package's share dir; the source-tree path when
    neither exists, so that the error message names a place a developer can put it."""
    source = Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL
    if source.is_file():
        return source
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            installed = Path(get_package_share_directory("hydranet_ros")) / "models" / DEFAULT_MODEL
        except (PackageNotFoundError, ValueError, OSError):  # OSError: AMENT_PREFIX_PATH unset (no ROS sourced)
            installed = None
        if installed is not None and installed.is_file():
            return installed
    except ImportError:  # pip install without ROS: no share dir to look in
        pass
    return source


def tasks_of_spec(spec: dict[str, Any], where: str) -> tuple[Task, ...]:
    heads = spec.get("heads")
    if not isinstance(heads, list) or not all(isinstance(h, dict) and "name" in h and "type" in h for h in heads):
        raise ModelError(f"{where}: the spec has no valid 'heads' list")
    fixed = {"name", "type", "classes", "loss_weight"}
    tasks = []
    for h in heads:
        if h["type"] not in KINDS:  # a newer model than this code: refuse it rather than drop that head's output
            raise ModelError(f"{where}: head {h['name']!r} is of kind {h['type']!r}, which this version of "
                             f"hydranet_ros does not know (kinds: {', '.join(KINDS)}); update hydranet_ros")
        options = {k: v for k, v in h.items() if k not in fixed}
        options = {**OPTIONS[h["type"]]().as_dict(), **options}  # the defaults under what the spec says
        tasks.append(Task(str(h["name"]), str(h["type"]), tuple(h.get("classes", [])), options))
    return tuple(tasks)


def check_hash(model_path: Path, card: dict[str, Any], verify: bool) -> str:
    actual = sha256_of(model_path)
    expected = card.get("sha256")
    if verify and expected != actual:
        raise ModelError(f"{model_path} does not match its card {card_path(model_path)}: sha256 {actual} != "
                         f"{expected} in the card; the file is corrupt or replaced. Copy the model and its card "
                         f"again, or re-export them together")
    return actual


def write_metadata(onnx_path: Path, meta: dict[str, Any], producer: tuple[str, str]) -> None:
    """Store `meta` (JSON) as the graph's only metadata entry, under METADATA_KEY; `producer`: (name, version)."""
    import onnx

    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    model.producer_name, model.producer_version = producer
    onnx.save(model, str(onnx_path))


def read_metadata(model_path: Path) -> dict[str, Any]:
    """The contract an exported graph carries (spec, input, outputs, canonical_fx), read without its weights
    going into a session; ModelError when the file is not an ONNX model written by `hydranet export`."""
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    # A damaged protobuf fails with DecodeError, RuntimeError or others depending on where the damage is.
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{model_path} is not a readable ONNX model ({type(exc).__name__}: {exc}); it is corrupt "
                         f"or truncated: copy it again, or {EXPORT_HINT}") from None
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            try:
                meta = json.loads(p.value)
            except json.JSONDecodeError as exc:
                raise ModelError(f"{model_path}: its '{METADATA_KEY}' metadata is not JSON ({exc})") from None
            if not isinstance(meta, dict) or not {"spec", "input", "outputs"} <= set(meta):
                raise ModelError(f"{model_path}: its '{METADATA_KEY}' metadata lacks spec, input or outputs")
            return meta
    raise ModelError(f"{model_path} has no '{METADATA_KEY}' metadata: it was not written by `hydranet export`; "
                     f"{EXPORT_HINT}")


def onnx_contract(model_path: Path, sha: str) -> ModelContract:
    meta = read_metadata(model_path)
    spec, inp = meta["spec"], meta["input"]
    try:
        width, height = int(inp["width"]), int(inp["height"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{model_path}: its metadata has no input width/height") from None
    fx = meta.get("canonical_fx")
    return ModelContract(path=model_path, sha256=sha, name=str(spec.get("name", model_path.stem)), input_width=width,
                         input_height=height, canonical_fx=None if fx is None else float(fx),
                         tasks=tasks_of_spec(spec, str(model_path)), outputs=dict(meta["outputs"]), spec=spec)
