"""Light-Weight RefineNet decoder and the task heads: shapes, paper structure, box decoding, ONNX parity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import Tensor, nn

from hydranet_ros.core.geometry import metric_scale
from hydranet_ros.model.decoder import CRP_STAGES, CRPBlock, LightWeightRefineNet
from hydranet_ros.model.heads import HEADS, DepthHead, DetectionHead, Head, SegmentationHead, build_head

STRIDES = (4, 8, 16, 32)
MOBILENET_V2 = (24, 32, 96, 320)
EFFICIENTNET_LITE0 = (24, 40, 112, 320)
SMALL_WIDTH = 32  # where the test is about heads or graphs, not the decoder's paper width


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def backbone_features(channels: tuple[int, ...], hw: tuple[int, int], batch: int = 1) -> list[Tensor]:
    """Random maps shaped like a backbone's output for an input of `hw` (ceil division, as stride-2 convs do)."""
    h, w = hw
    return [torch.randn(batch, c, math.ceil(h / s), math.ceil(w / s)) for c, s in zip(channels, STRIDES, strict=True)]


# --- decoder -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [MOBILENET_V2, EFFICIENTNET_LITE0], ids=["mobilenet_v2", "efficientnet_lite0"])
@pytest.mark.parametrize("hw", [(384, 640), (192, 320)], ids=["640x384", "320x192"])
@pytest.mark.parametrize("batch", [1, 2])
def test_decoder_output_is_width_channels_at_stride_4(channels, hw, batch):
    decoder = LightWeightRefineNet(channels).eval()
    assert (decoder.out_channels, decoder.out_stride) == (256, 4)
    with torch.no_grad():
        out = decoder(backbone_features(channels, hw, batch))
    assert out.shape == (batch, 256, hw[0] // 4, hw[1] // 4)
    assert torch.isfinite(out).all()


def test_decoder_handles_odd_sizes_and_custom_width():
    # 360 px: strides give 90, 45, 23, 12 rows, so upsampling cannot be a fixed factor of 2.
    decoder = LightWeightRefineNet(MOBILENET_V2, width=SMALL_WIDTH).eval()
    with torch.no_grad():
        out = decoder(backbone_features(MOBILENET_V2, (360, 202)))
    assert out.shape == (1, SMALL_WIDTH, 90, 51)


# The layers the reference MobileNet-v2 decoder taps, per stride: l3; l4; l5 + l6; l7 + l8.
PAPER_TAPS = ((24,), (32,), (64, 96), (160, 320))


def test_decoder_structure_follows_the_paper():
    width = 64
    decoder = LightWeightRefineNet(PAPER_TAPS, width=width)
    crps = [m for m in decoder.modules() if isinstance(m, CRPBlock)]
    assert CRP_STAGES == 4 and len(crps) == 4
    for level, crp in enumerate(decoder.crp):
        assert len(crp.convs) == 4
        pool = crp.pool
        assert isinstance(pool, nn.MaxPool2d)
        assert (pool.kernel_size, pool.stride, pool.padding) == (5, 1, 2)
        for conv in crp.convs:
            assert (conv.kernel_size, conv.bias, conv.in_channels, conv.out_channels) == ((1, 1), None, width, width)
            # Multi-task paper: only the last (finest) CRP block is depthwise.
            assert conv.groups == (width if level == 0 else 1)
    assert [[(c.in_channels, c.out_channels, c.kernel_size, c.bias) for c in level] for level in decoder.lateral] == [
        [(c, width, (1, 1), None) for c in level] for level in PAPER_TAPS
    ]
    assert len(decoder.adapt) == 3
    assert all(c.kernel_size == (1, 1) and c.bias is None and c.in_channels == c.out_channels for c in decoder.adapt)
    assert isinstance(decoder.act, nn.ReLU6)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in decoder.modules())


def test_crp_chains_its_pooling_stages():
    """With identity convs the block must give x + p(x) + p(p(x)) + ... : each stage pools the previous one."""
    crp = CRPBlock(3)
    with torch.no_grad():
        for conv in crp.convs:
            conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        x = torch.randn(2, 3, 20, 24)
        expected, path = x.clone(), x
        for _ in range(4):
            path = nn.functional.max_pool2d(path, 5, stride=1, padding=2)
            expected = expected + path
        torch.testing.assert_close(crp(x), expected)


def test_decoder_output_depends_on_every_level():
    decoder = LightWeightRefineNet(EFFICIENTNET_LITE0, width=SMALL_WIDTH)
    features = [f.requires_grad_() for f in backbone_features(EFFICIENTNET_LITE0, (64, 96))]
    decoder(features).abs().sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in features)


def test_decoder_rejects_a_wrong_number_of_levels():
    with pytest.raises(ValueError, match="expected 4 backbone levels"):
        LightWeightRefineNet((24, 32, 96))
    with pytest.raises(ValueError, match="expected 4 feature maps"):
        LightWeightRefineNet(MOBILENET_V2)(backbone_features(MOBILENET_V2, (64, 64))[:3])


# --- heads -------------------------------------------------------------------------------------------------------


def test_seg_and_depth_heads_use_the_papers_task_layers():
    for head in (SegmentationHead(64, "seg", ["background", "lane"]), DepthHead(64, "depth")):
        pre, act, out = head.branch
        assert (pre.kernel_size, pre.groups, pre.bias) == ((1, 1), 64, None)  # depthwise 1x1
        assert isinstance(act, nn.ReLU6)
        assert out.kernel_size == (3, 3) and out.groups == 1 and out.bias is not None


@pytest.mark.parametrize("batch", [1, 2])
def test_segmentation_head(batch):
    head = build_head("segmentation", SMALL_WIDTH, "drivable", ["background", "drivable", "other"])
    x = torch.randn(batch, SMALL_WIDTH, 24, 40)
    with torch.no_grad():
        logits = head(x)
        ids = head.export_outputs(logits, (96, 160))["drivable"]
    assert logits.shape == (batch, 3, 24, 40)
    assert ids.shape == (batch, 96, 160) and ids.dtype == torch.uint8
    assert int(ids.max()) < 3
    half = SegmentationHead(SMALL_WIDTH, "lanes", ["background", "lane"], output_stride=2)
    assert half.export_outputs(half(x), (96, 160))["lanes"].shape == (batch, 48, 80)


def test_depth_head_is_positive_and_capped():
    head = build_head("depth", SMALL_WIDTH, "depth", [], max_depth=50.0, canonical_fx=720.0)
    assert isinstance(head, DepthHead)
    # Huge activations saturate the sigmoid at both ends; the range must hold there too.
    x = torch.randn(2, SMALL_WIDTH, 24, 40) * 1e4
    with torch.no_grad():
        depth = head(x)
        published = head.export_outputs(depth, (96, 160))["depth"]
    assert depth.shape == (2, 1, 24, 40)
    assert published.shape == (2, 96, 160) and published.dtype == torch.float32
    for d in (depth, published):
        assert (d > 0).all() and (d <= 50.0).all()
        assert (d >= head.min_depth).all()
    assert metric_scale(1440.0, head.canonical_fx) == pytest.approx(2.0)


def test_detection_head_shapes_and_init():
    head = build_head("detection", SMALL_WIDTH, "objects", ["car", "person"], max_detections=20)
    assert isinstance(head, DetectionHead)
    assert head.heat.out.bias.detach().numpy() == pytest.approx(-2.19, abs=0.01)
    x = torch.randn(2, SMALL_WIDTH, 24, 40)
    with torch.no_grad():
        raw = head(x)
        boxes = head.export_outputs(raw, (96, 160))["objects"]
    assert raw.shape == (2, 2 + 4, 24, 40)
    assert boxes.shape == (2, 20, 6) and boxes.dtype == torch.float32
    assert torch.isfinite(boxes).all()

    coarse = DetectionHead(SMALL_WIDTH, "objects", ["car"], stride=8)
    assert coarse(x).shape == (2, 1 + 4, 12, 20)
    with pytest.raises(ValueError, match="stride must be 4 or 8"):
        DetectionHead(SMALL_WIDTH, "objects", ["car"], stride=16)


EMPTY = -1000.0  # sigmoid(-1000) is exactly 0 in float32


def raw_detection_map(classes: int, h: int, w: int) -> Tensor:
    """A detection head's raw output with an empty heatmap, unit sizes and zero offsets, to edit by hand."""
    raw = torch.zeros(1, classes + 4, h, w)
    raw[:, :classes] = EMPTY
    return raw


def place(raw: Tensor, classes: int, cls: int, row: int, col: int, logit: float, wh=(1.0, 1.0), offset=(0.0, 0.0)):
    raw[0, cls, row, col] = logit
    raw[0, classes : classes + 2, row, col] = torch.tensor(wh).log()
    raw[0, classes + 2 :, row, col] = torch.tensor(offset)


def test_detection_decode_gives_exact_boxes_scores_and_classes():
    head = DetectionHead(8, "objects", ["car", "person", "bike"], max_detections=10)
    raw = raw_detection_map(3, 12, 16)  # input 48 x 64 at stride 4
    place(raw, 3, cls=1, row=3, col=5, logit=2.0, wh=(4.0, 2.0), offset=(0.25, 0.5))
    place(raw, 3, cls=2, row=8, col=10, logit=0.5, wh=(2.5, 5.0), offset=(0.75, 0.0))
    place(raw, 3, cls=0, row=0, col=0, logit=1.0, wh=(4.0, 4.0), offset=(0.5, 0.5))  # overhangs the top-left corner
    out = head.decode(raw, (48, 64))
    assert out.shape == (1, 10, 6)
    sig = torch.sigmoid(torch.tensor([2.0, 1.0, 0.5])).tolist()
    expected = torch.tensor(
        [
            # centre (col + dx, row + dy) * 4, size wh * 4
            [13.0, 10.0, 29.0, 18.0, sig[0], 1.0],  # centre (21, 14), 16 x 8
            [0.0, 0.0, 10.0, 10.0, sig[1], 0.0],  # centre (2, 2), 16 x 16, clipped at 0
            [38.0, 22.0, 48.0, 42.0, sig[2], 2.0],  # centre (43, 32), 10 x 20
        ]
    )
    torch.testing.assert_close(out[0, :3], expected, atol=1e-4, rtol=0)
    assert (out[0, 3:, 4] == 0).all() and torch.isfinite(out).all()


def test_detection_decode_suppresses_a_peaks_neighbours():
    head = DetectionHead(8, "objects", ["car", "person"], max_detections=12)
    raw = raw_detection_map(2, 12, 16)
    raw[0, 0, 4:7, 4:7] = 2.9  # the 8 neighbours, nearly as strong as the peak
    place(raw, 2, cls=0, row=5, col=5, logit=3.0)
    place(raw, 2, cls=0, row=5, col=8, logit=1.0)  # 3 cells away: a peak of its own
    place(raw, 2, cls=1, row=5, col=6, logit=2.0)  # next to the car peak, but another class: kept
    out = head.decode(raw, (48, 64))[0]
    scores = out[:, 4]
    torch.testing.assert_close(scores[:3], torch.sigmoid(torch.tensor([3.0, 2.0, 1.0])))
    assert (scores[3:] == 0).all()
    assert out[:3, 5].tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(out[0, :4], torch.tensor([18.0, 18.0, 22.0, 22.0]))  # cell (5, 5), 1 x 1 cells


def test_detection_decode_suppresses_overlapping_boxes_of_a_class_fast_nms():
    # Three car peaks 3 cells apart on one big object (boxes 10 x 10 cells: IoU 0.54 between neighbours), a smaller
    # car far away and a person on the big car: only the best big-car box, the far car and the person remain.
    head = DetectionHead(8, "objects", ["car", "person"], max_detections=8)
    raw = raw_detection_map(2, 24, 32)
    for col, logit in ((8, 2.0), (11, 3.0), (14, 1.5)):
        place(raw, 2, cls=0, row=10, col=col, logit=logit, wh=(10.0, 10.0))
    place(raw, 2, cls=0, row=10, col=26, logit=0.5, wh=(3.0, 3.0))
    place(raw, 2, cls=1, row=10, col=10, logit=1.0, wh=(10.0, 10.0))
    out = head.decode(raw, (96, 128))[0]
    kept = out[out[:, 4] > 0]
    assert kept[:, 5].tolist() == [0.0, 1.0, 0.0]  # best car, the person, the far car: best first
    torch.testing.assert_close(kept[:, 4], torch.sigmoid(torch.tensor([3.0, 1.0, 0.5])))
    torch.testing.assert_close(kept[0, :4], torch.tensor([24.0, 20.0, 64.0, 60.0]))  # the best car's own box
    # With suppression off, every peak is a row, as before the NMS existed.
    off = DetectionHead(8, "objects", ["car", "person"], max_detections=8, nms_iou=1.0)
    off.load_state_dict(head.state_dict())
    assert int((off.decode(raw, (96, 128))[0, :, 4] > 0).sum()) == 5
    with pytest.raises(ValueError, match=r"nms_iou must be in \(0, 1\], got 0.0"):
        DetectionHead(8, "objects", ["car"], nms_iou=0.0)


def test_detection_decode_keeps_k_static_on_tiny_maps():
    head = DetectionHead(8, "objects", ["car"], max_detections=100)
    assert head.decode(raw_detection_map(1, 3, 4), (12, 16)).shape == (1, 12, 6)


def test_registry_and_unknown_types_and_options():
    assert set(HEADS) == {"segmentation", "depth", "detection"}
    assert all(issubclass(cls, Head) and cls.type == key for key, cls in HEADS.items())
    with pytest.raises(ValueError, match=r"unknown head type 'keypoints'; valid types: depth, detection, segmentation"):
        build_head("keypoints", 8, "kp", ["nose"])
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['max_dept'\].*valid options: .*'max_depth'"):
        build_head("depth", 8, "depth", [], max_dept=10.0)
    with pytest.raises(ValueError, match="2..256 classes"):
        build_head("segmentation", 8, "seg", ["only"])


# --- ONNX ---------------------------------------------------------------------------------------------------------


class _Fused(nn.Module):
    """Decoder plus every head's export outputs, as the real export will chain them after a backbone."""

    def __init__(self, decoder: LightWeightRefineNet, heads: list[Head]) -> None:
        super().__init__()
        self.decoder = decoder
        self.heads = nn.ModuleList(heads)

    def forward(self, f4: Tensor, f8: Tensor, f16: Tensor, f32: Tensor) -> tuple[Tensor, ...]:
        x = self.decoder([f4, f8, f16, f32])
        input_hw = (f4.shape[-2] * 4, f4.shape[-1] * 4)
        outputs: list[Tensor] = []
        for head in self.heads:
            outputs.extend(head.export_outputs(head(x), input_hw).values())
        return tuple(outputs)


def _assert_same_detections(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Rows as sets: detections whose scores differ only by rounding may swap places, or at the K-th place swap
    with the first one left out. So match each torch row to its nearest ONNX row, away from the cut-off."""
    np.testing.assert_allclose(theirs[..., 4], ours[..., 4], atol=1e-4)  # sorted scores match regardless of order
    for want, got in zip(ours, theirs, strict=True):
        safe = want[want[:, 4] > want[-1, 4] + 1e-4]
        assert len(safe) > len(want) // 2
        for row in safe:
            same_class = got[got[:, 5] == row[5]]
            assert len(same_class), f"no class {row[5]} detection in the ONNX output"
            assert np.abs(same_class - row).max(axis=1).min() <= 1e-3


def test_onnx_export_matches_torch(tmp_path: Path):
    heads: list[Head] = [
        SegmentationHead(SMALL_WIDTH, "drivable", ["background", "drivable"]),
        DepthHead(SMALL_WIDTH, "depth"),
        DetectionHead(SMALL_WIDTH, "objects", ["car", "person", "bike"], max_detections=50),
    ]
    fused = _Fused(LightWeightRefineNet(MOBILENET_V2, width=SMALL_WIDTH), heads).eval()
    hw = (192, 320)
    names_in = ["f4", "f8", "f16", "f32"]
    names_out = [h.name for h in heads]
    path = tmp_path / "heads.onnx"
    torch.onnx.export(
        fused,
        tuple(backbone_features(MOBILENET_V2, hw, batch=2)),
        str(path),
        input_names=names_in,
        output_names=names_out,
        dynamic_axes={n: {0: "batch"} for n in names_in + names_out},
        opset_version=17,
        dynamo=False,  # the dynamo exporter needs onnxscript, which this environment does not have
    )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    assert {"ArgMax", "TopK", "MaxPool", "GatherElements", "Resize"} <= ops  # all decoding is inside the graph

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        features = backbone_features(MOBILENET_V2, hw, batch)
        with torch.no_grad():
            ours = [t.numpy() for t in fused(*features)]
        theirs = session.run(names_out, {n: f.numpy() for n, f in zip(names_in, features, strict=True)})
        seg, depth, dets = theirs
        assert seg.dtype == np.uint8 and seg.shape == (batch, *hw)
        assert np.mean(seg != ours[0]) < 1e-3  # argmax ties may break differently
        assert depth.dtype == np.float32 and depth.shape == (batch, *hw)
        np.testing.assert_allclose(depth, ours[1], atol=1e-4, rtol=0)
        assert dets.dtype == np.float32 and dets.shape == (batch, 50, 6)
        _assert_same_detections(ours[2], dets)
