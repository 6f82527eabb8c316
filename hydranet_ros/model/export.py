"""Fused export: one ONNX graph for every task, plus the model card that travels beside it.

The graph takes uint8 RGB [B,H,W,3] (dynamic batch) and gives, per head, tensors ready to publish. The spec,
class names, canonical focal length and the output contract travel in the ONNX metadata (key `hydranet`) and
in `<model>.yaml` beside it, with the ONNX file's sha256 so the runtime can check what it loads.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import warnings
from pathlib import Path
from typing import Any

import torch

from hydranet_ros import __version__
from hydranet_ros.core.contract import write_card, write_metadata
from hydranet_ros.core.hashing import sha256_of
from hydranet_ros.model.backbones import WeightsError, read_state_dict
from hydranet_ros.model.hydra import FusedHydraNet, HydraNet
from hydranet_ros.model.spec import ModelSpec

OPSET = 17


def load_weights(net: torch.nn.Module, path: Path) -> None:
    """Load a HydraNet checkpoint safely (safetensors, or torch.load(weights_only=True)) with strict keys."""
    state = read_state_dict(path)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(f"weights {path} do not fit this spec: missing {sorted(missing)[:8]}"
                           f"{' ...' if len(missing) > 8 else ''}, unexpected {sorted(unexpected)[:8]}"
                           f"{' ...' if len(unexpected) > 8 else ''}")


def output_contract(fused: FusedHydraNet) -> dict[str, dict[str, Any]]:
    """What each output is, for the runtime and for people: kind, head, classes, dtype, shape, units."""
    spec = fused.net.spec
    h, w = spec.input_height, spec.input_width
    with torch.no_grad():
        outs = fused.named(torch.zeros(1, h, w, 3, dtype=torch.uint8))
    contract = {}
    for name, t in outs.items():
        head = spec.head(name) if name in {hh.name for hh in spec.heads} else None
        entry: dict[str, Any] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": ["batch", *t.shape[1:]]}
        if head is not None:
            entry.update(kind=head.type, head=head.name, classes=list(head.classes))
            if head.type == "depth":
                entry["units"] = "m"
            if head.type == "detection":
                entry["columns"] = ["x1", "y1", "x2", "y2", "score", "class"]
                entry["units"] = "input pixels"
        contract[name] = entry
    return contract


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def export_onnx(spec: ModelSpec, out: Path, weights: Path | None = None,
                provenance: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> Path:
    """Export `spec` (with `weights`, else its initial weights) to `out` and write the card `out.yaml`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = HydraNet(spec, backbone_weights=False if weights else None)
    if weights:
        load_weights(net, weights)
    net.eval()
    fused = FusedHydraNet(net).eval()
    names = fused.output_names
    dummy = torch.zeros(1, spec.input_height, spec.input_width, 3, dtype=torch.uint8)
    with warnings.catch_warnings():
        # The tracer warns where the graph takes Python constants from the input's height and width, the top-K
        # size and the normalisation constants: all fixed by the spec on purpose (only the batch is dynamic, and
        # test_model checks every batch size against torch). Users saw four such warnings on every export.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            fused, (dummy,), str(out), input_names=["images"], output_names=names, opset_version=OPSET,
            dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}}, dynamo=False,
        )
    contract = output_contract(fused)
    depth_heads = [h.name for h in spec.heads if h.type == "depth"]
    canonical_fx = float(net.heads[depth_heads[0]].canonical_fx) if depth_heads else None
    meta = {
        "format": 1,
        "spec": spec.to_dict(),
        "input": {"name": "images", "layout": "NHWC", "dtype": "uint8", "color": "RGB",
                  "width": spec.input_width, "height": spec.input_height,
                  "mean": list(net.backbone.mean), "std": list(net.backbone.std), "normalised_in_graph": True},
        "outputs": contract,
        "canonical_fx": canonical_fx,
    }
    write_metadata(out, meta, ("hydranet_ros", __version__))
    write_card(out, meta["spec"], {
        "description": spec.description,
        "input": meta["input"],
        "outputs": contract,
        "canonical_fx": canonical_fx,
        "provenance": {
            "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "hydranet_ros": __version__,
            "git_commit": _git_commit(),
            "torch": str(torch.__version__),
            "opset": OPSET,
            "weights": {"file": Path(weights).name, "sha256": sha256_of(Path(weights))} if weights else
            "initial weights (ImageNet backbone where the spec asks for it, heads untrained)",
            **(provenance or {}),
        },
        "metrics": metrics or "not measured",
    })
    return out
