"""hydranet info SPEC_OR_ONNX [--size WxH]: parameters per part, GFLOPs, inputs and outputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="model spec YAML or an exported .onnx")
    p.add_argument("--size", help="input size WxH for the GFLOPs (default: the model's input size)")


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hydranet_ros.core.contract import ModelError, read_metadata
    from hydranet_ros.model.hydra import FusedHydraNet, HydraNet
    from hydranet_ros.model.spec import ModelSpec, SpecError, load_spec

    try:
        if args.model.suffix == ".onnx":
            spec = ModelSpec.from_dict(read_metadata(args.model)["spec"], source=str(args.model))
        else:
            spec = load_spec(args.model)
        if args.size:
            spec = spec.with_input_size(args.size)
    except (SpecError, ModelError, ValueError, OSError) as exc:
        print(f"hydranet info: {exc}", file=sys.stderr)
        return 2

    net = HydraNet(spec, backbone_weights=False).eval()
    fused = FusedHydraNet(net).eval()
    w, h = spec.input_width, spec.input_height

    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    x = torch.zeros(1, 3, h, w)
    flops: dict[str, float] = {}
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc:
            feats = net.backbone.forward_taps(x)
        flops["backbone"] = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            shared = net.decoder(feats)
        flops["decoder"] = fc.get_total_flops()
        for name, head in net.heads.items():
            with FlopCounterMode(display=False) as fc:
                head(shared)
            flops[f"head {name}"] = fc.get_total_flops()
    params = {"backbone": count(net.backbone), "decoder": count(net.decoder),
              **{f"head {n}": count(hd) for n, hd in net.heads.items()}}
    print(f"{spec.name}: {spec.backbone} + Light-Weight RefineNet (width {spec.decoder_width}), input {w}x{h}")
    print(f"{'part':<24}{'params':>12}{'GFLOPs':>10}")
    for part in params:
        print(f"{part:<24}{params[part]:>12,}{flops[part] / 1e9:>10.2f}")
    print(f"{'total':<24}{sum(params.values()):>12,}{sum(flops.values()) / 1e9:>10.2f}")
    print("(GFLOPs: multiply and add counted separately, batch 1)")
    print(f"\ninput   images  uint8 [batch, {h}, {w}, 3] RGB (normalised inside the graph)")
    with torch.no_grad():
        outs = fused.named(torch.zeros(1, h, w, 3, dtype=torch.uint8))
    for name, t in outs.items():
        print(f"output  {name:<16}{str(t.dtype).replace('torch.', ''):<8} [batch, {', '.join(map(str, t.shape[1:]))}]")
    return 0
