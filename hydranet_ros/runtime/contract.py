"""`load_contract`: the contract of any model file the engines run, checked against its card (core/contract.py).

An exported `.onnx` carries its contract in its metadata. A torch checkpoint's card holds its spec only, so its
contract comes from building the network once (torch is imported only here, only for checkpoints: the ONNX path
runs where torch is not installed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydranet_ros.core.contract import (
    CHECKPOINT_SUFFIXES,
    EXPORT_HINT,
    ModelContract,
    ModelError,
    card_path,
    check_hash,
    onnx_contract,
    read_card,
    tasks_of_spec,
)


def _checkpoint_contract(model_path: Path, card: dict[str, Any], sha: str) -> ModelContract:
    # Torch is needed to run a checkpoint anyway; building the fused module once gives the exact output contract
    # (the same function export uses) and the depth head's canonical_fx with its default filled in.
    from hydranet_ros.model.export import output_contract
    from hydranet_ros.model.hydra import FusedHydraNet, HydraNet
    from hydranet_ros.model.spec import ModelSpec, SpecError

    spec_dict = card.get("spec")
    try:
        spec = ModelSpec.from_dict(spec_dict, source=f"spec in {card_path(model_path)}")
        net = HydraNet(spec, backbone_weights=False).eval()
    except (SpecError, ValueError) as exc:
        raise ModelError(str(exc)) from None
    fused = FusedHydraNet(net).eval()
    depth = [h for h in spec.heads if h.type == "depth"]
    fx = float(net.heads[depth[0].name].canonical_fx) if depth else None
    doc = spec.to_dict()
    return ModelContract(path=model_path, sha256=sha, name=spec.name, input_width=spec.input_width,
                         input_height=spec.input_height, canonical_fx=fx, tasks=tasks_of_spec(doc, str(model_path)),
                         outputs=output_contract(fused), spec=doc)


def load_contract(model_path: Path, verify_sha256: bool = True) -> ModelContract:
    """The contract of an exported `.onnx` or a torch checkpoint with its card; ModelError saying what is wrong."""
    model_path = Path(model_path).expanduser()
    if not model_path.is_file():
        raise ModelError(f"no model at {model_path}: {EXPORT_HINT}, or set the model path to an existing file")
    if model_path.suffix not in (".onnx", *CHECKPOINT_SUFFIXES):
        raise ModelError(f"{model_path}: unknown model type {model_path.suffix!r}; expected .onnx, or a torch "
                         f"checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) with its card")
    card = read_card(model_path)
    if model_path.suffix != ".onnx" and not isinstance(card.get("spec"), dict):
        raise ModelError(f"card {card_path(model_path)} has no 'spec': a checkpoint's card must name the network "
                         f"(write it with hydranet_ros.core.contract.write_card)")
    sha = check_hash(model_path, card, verify_sha256)
    if model_path.suffix == ".onnx":
        return onnx_contract(model_path, sha)
    return _checkpoint_contract(model_path, card, sha)
