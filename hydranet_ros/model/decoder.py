"""Light-Weight RefineNet decoder, as in the multi-task network of Nekrasov et al. (ICRA 2019).

References:
    V. Nekrasov, T. Dharmasiri, A. Spek, T. Drummond, C. Shen, I. Reid, "Real-Time Joint Semantic Segmentation and
    Depth Estimation Using Asymmetric Annotations", ICRA 2019 (code: github.com/DrSleep/multi-task-refinenet).
    V. Nekrasov, C. Shen, I. Reid, "Light-Weight RefineNet for Real-Time Semantic Segmentation", BMVC 2018
    (code: github.com/DrSleep/light-weight-refinenet).

Top-down, from the coarsest level to the finest, each level does

    x = ReLU6(conv1x1(feature) + upsample(previous level))   # the coarsest level has no previous level
    x = CRP(x)                                               # 4 stages of maxpool 5x5/1 + conv1x1, summed
    x = conv1x1(x)                                           # "conv_adapt"; not on the finest level

and the finest level's CRP output (stride 4) is what the task heads branch off. All convolutions are 1x1 without
bias and there is no batch norm, as in the reference. As in the multi-task paper (and unlike the BMVC 2018 decoder)
the finest CRP block uses depthwise 1x1 convolutions, which is where most of the decoder's FLOPs would otherwise go.

A level may tap several backbone layers: each gets its own 1x1 projection and the projections are summed before
the ReLU6, exactly as the reference MobileNet-v2 decoder does with its two layers at strides 16 (64 + 96 channels)
and 32 (160 + 320 channels): conv5..conv8 in the reference. With MobileNetV2.tap_channels this decoder is that
network block for block.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

CRP_STAGES = 4  # pooling stages per chained-residual-pooling block, fixed in both papers
NUM_LEVELS = 4  # backbone feature maps at strides 4, 8, 16, 32


def _conv1x1(in_channels: int, out_channels: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False, groups=groups)


class CRPBlock(nn.Module):
    """Chained residual pooling: each stage pools the previous stage's output and is added to the block's output.

    Chaining (rather than pooling the input every time) makes the receptive field grow by 4 pixels per stage, so
    4 stages see 17x17 at the block's stride, at the cost of 1x1 convolutions only.
    """

    def __init__(self, channels: int, stages: int = CRP_STAGES, depthwise: bool = False) -> None:
        super().__init__()
        # Stride 1 with padding 2 keeps the resolution; one pooling module serves every stage (it has no weights).
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)
        groups = channels if depthwise else 1
        self.convs = nn.ModuleList(_conv1x1(channels, channels, groups) for _ in range(stages))

    def forward(self, x: Tensor) -> Tensor:
        out = x
        path = x
        for conv in self.convs:
            path = conv(self.pool(path))
            out = out + path
        return out


class LightWeightRefineNet(nn.Module):
    """Shared decoder: 4 backbone maps (strides 4, 8, 16, 32) -> one `width`-channel map at stride 4.

    Modules are indexed like the input list, finest first: `lateral[i]` and `crp[i]` belong to stride 4 * 2**i;
    `adapt[i - 1]` follows `crp[i]` for i = 1..3 (the finest level's output goes straight to the heads).
    """

    out_stride: int = 4

    def __init__(self, in_channels: Sequence[int | Sequence[int]], width: int = 256) -> None:
        """`in_channels`: per stride (finest first), the channels of the tapped layer, or of each tapped layer."""
        super().__init__()
        if len(in_channels) != NUM_LEVELS:
            raise ValueError(f"expected {NUM_LEVELS} backbone levels (strides 4..32), got channels {list(in_channels)}")
        taps = tuple((c,) if isinstance(c, int) else tuple(c) for c in in_channels)
        self.in_channels = taps
        self.out_channels = width
        self.lateral = nn.ModuleList(nn.ModuleList(_conv1x1(c, width) for c in level) for level in taps)
        self.crp = nn.ModuleList(CRPBlock(width, depthwise=(level == 0)) for level in range(NUM_LEVELS))
        self.adapt = nn.ModuleList(_conv1x1(width, width) for _ in range(NUM_LEVELS - 1))
        self.act = nn.ReLU6()

    def forward(self, features: Sequence[Tensor | Sequence[Tensor]]) -> Tensor:
        if len(features) != NUM_LEVELS:
            raise ValueError(f"expected {NUM_LEVELS} feature maps, got {len(features)}")
        x: Tensor | None = None
        for level in reversed(range(NUM_LEVELS)):
            maps = [features[level]] if isinstance(features[level], Tensor) else list(features[level])
            if len(maps) != len(self.lateral[level]):
                raise ValueError(f"level {level}: expected {len(self.lateral[level])} tapped maps, got {len(maps)}")
            y = sum(proj(m) for proj, m in zip(self.lateral[level], maps, strict=True))
            if x is not None:
                # Size from the finer map, not a fixed factor of 2: odd input sizes give e.g. 12 -> 23 at stride 16.
                y = y + F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=False)
            x = self.crp[level](self.act(y))
            if level > 0:
                x = self.adapt[level - 1](x)
        assert x is not None
        return x
