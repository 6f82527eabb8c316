"""The HydraNet: one backbone, one Light-Weight RefineNet decoder, one head per task; and its fused export form.

`HydraNet.forward` returns the heads' raw outputs (for training) keyed by head name. `FusedHydraNet` wraps it
for deployment: uint8 RGB images [B,H,W,3] in, normalisation inside, publish-ready tensors out.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from hydranet_ros.model.backbones import build_backbone
from hydranet_ros.model.decoder import LightWeightRefineNet
from hydranet_ros.model.heads import build_head
from hydranet_ros.model.spec import ModelSpec


class HydraNet(nn.Module):
    def __init__(self, spec: ModelSpec, backbone_weights: bool | str | Path | None = None) -> None:
        """`backbone_weights`: None follows spec.pretrained_backbone; True/False/a file path overrides it."""
        super().__init__()
        self.spec = spec
        pretrained = spec.pretrained_backbone if backbone_weights is None else backbone_weights
        self.backbone = build_backbone(spec.backbone, pretrained=pretrained)
        self.decoder = LightWeightRefineNet(self.backbone.tap_channels, width=spec.decoder_width)
        self.heads = nn.ModuleDict({
            h.name: build_head(h.type, self.decoder.out_channels, h.name, list(h.classes), **h.options)
            for h in spec.heads
        })

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: normalised float images [B,3,H,W] -> {head name: raw output at the decoder's stride}."""
        shared = self.decoder(self.backbone.forward_taps(x))
        return {name: head(shared) for name, head in self.heads.items()}

    def normalise(self, images_u8: Tensor) -> Tensor:
        """uint8 RGB [B,H,W,3] -> the backbone's normalised float input [B,3,H,W]."""
        return self.backbone.normalize(images_u8.permute(0, 3, 1, 2).float())


class FusedHydraNet(nn.Module):
    """Deployment form: everything between the camera's pixels and the published tensors, in one graph."""

    def __init__(self, net: HydraNet) -> None:
        super().__init__()
        self.net = net
        self.output_names: list[str] = []
        self._probe_output_names()

    def _probe_output_names(self) -> None:
        # In eval mode: a probe batch in train mode would overwrite BatchNorm's running statistics.
        h, w = self.net.spec.input_height, self.net.spec.input_width
        was_training = self.net.training
        self.net.eval()
        with torch.no_grad():
            out = self._outputs(torch.zeros(1, h, w, 3, dtype=torch.uint8))
        self.net.train(was_training)
        self.output_names = list(out)

    def _outputs(self, images_u8: Tensor) -> dict[str, Tensor]:
        raw = self.net(self.net.normalise(images_u8))
        hw = (int(images_u8.shape[1]), int(images_u8.shape[2]))
        out: dict[str, Tensor] = {}
        for name, head in self.net.heads.items():
            out.update(head.export_outputs(raw[name], hw))
        return out

    def forward(self, images_u8: Tensor) -> tuple[Tensor, ...]:
        out = self._outputs(images_u8)
        return tuple(out[n] for n in self.output_names)

    def named(self, images_u8: Tensor) -> dict[str, Tensor]:
        return dict(zip(self.output_names, self.forward(images_u8), strict=True))
