"""The assembled HydraNet: spec validation, the paper's network, fused ONNX export and its contract, parity."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from conftest import SAMPLES
from hydranet_ros.core.contract import read_metadata
from hydranet_ros.model.backbones import BACKBONES
from hydranet_ros.model.export import export_onnx
from hydranet_ros.model.hydra import FusedHydraNet, HydraNet
from hydranet_ros.model.spec import ModelSpec, SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO / "config" / "models" / "hydranet_effl0_road.yaml"
NEKRASOV_SPEC = REPO / "config" / "models" / "nekrasov_mbv2_seg_depth.yaml"
HYDRANET = [str(Path(sys.executable).parent / "hydranet")]


def with_size(spec: ModelSpec, w: int, h: int) -> ModelSpec:
    return spec.with_input_size(f"{w}x{h}")


def real_frames(w: int, h: int, shared: Path | None = None) -> np.ndarray:
    paths = sorted(SAMPLES.glob("*.jpg"))
    if shared is not None:
        paths += sorted((shared / "images" / "bdd100k").glob("*.jpg"))[:2]
        paths += [shared / "kitti" / "image_2" / "000008.png"]
    frames = [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
              for p in paths]
    return np.stack(frames)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[tuple[int, int], tuple[Path, FusedHydraNet]]:
    """The default spec at two input sizes: random weights saved as safetensors, exported through --weights, and
    the torch module holding the same weights."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    out = {}
    for w, h in ((640, 384), (320, 192)):
        spec = with_size(load_spec(DEFAULT_SPEC), w, h)
        folder = tmp_path_factory.mktemp("onnx")
        net = HydraNet(spec).eval()  # ImageNet backbone, random heads
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "weights.safetensors")
        path = export_onnx(spec, folder / f"default_{w}x{h}.onnx", weights=folder / "weights.safetensors")
        out[(w, h)] = (path, FusedHydraNet(net).eval())
    return out


def test_spec_errors_are_clear_and_all_reported_at_once():
    doc = yaml.safe_load(DEFAULT_SPEC.read_text())
    doc["backbone"] = "resnet9000"
    doc["input"] = {"width": 650, "height": 384}
    doc["heads"][1]["name"] = "drivable_area"
    doc["heads"][3]["type"] = "keypoints"
    doc["heads"][0]["classes"] = []
    doc["colour"] = "red"
    with pytest.raises(SpecError) as err:
        ModelSpec.from_dict(doc, source="my.yaml")
    text = str(err.value)
    assert text.startswith("my.yaml: 6 problem(s)")
    for needle in ("backbone: must be one of efficientnet_lite0, mobilenet_v2; got 'resnet9000'",
                   "input.width: must be a multiple of 32", "the name 'drivable_area' is used twice",
                   "type: must be one of segmentation, depth, detection; got 'keypoints'",
                   "a segmentation head needs at least one class", "unknown key 'colour'"):
        assert needle in text


def test_spec_round_trips_and_unknown_head_options_are_refused():
    spec = load_spec(DEFAULT_SPEC)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    # Options are resolved once, in the spec: the defaults a file leaves out are filled in for every layer.
    assert spec.head("detections").options == {"stride": 4, "max_detections": 100, "nms_iou": 0.5}
    assert spec.head("depth").options["canonical_fx"] == pytest.approx(554.256)
    assert spec.head("depth").options["min_depth"] == 0.1
    doc = spec.to_dict()
    doc["heads"][3]["max_detectionz"] = 5
    doc["heads"][2]["max_depth"] = "far"
    doc["heads"][2]["min_depth"] = 0.0
    with pytest.raises(ValueError, match="max_detectionz") as err:
        HydraNet(ModelSpec.from_dict(doc), backbone_weights=False)
    assert "3 problem(s)" not in str(err.value)  # one per head: its first wrong option
    assert "heads[2] (depth).max_depth: expected float, got 'far'" in str(err.value)
    assert "valid options: ['max_detections', 'nms_iou', 'stride']" in str(err.value)


def test_mobilenet_v2_spec_is_the_nekrasov_network_block_for_block():
    net = HydraNet(load_spec(NEKRASOV_SPEC))
    # Encoder taps l3..l8 of the reference: 24 | 32 | 64 + 96 | 160 + 320 channels, each projected to 256.
    taps = [[c.in_channels for c in level] for level in net.decoder.lateral]
    assert taps == [[24], [32], [64, 96], [160, 320]]
    assert all(c.out_channels == 256 for level in net.decoder.lateral for c in level)
    assert [len(c.convs) for c in net.decoder.crp] == [4, 4, 4, 4]
    x = torch.randn(1, 3, 192, 320)
    out = net(x)
    assert out["segmentation"].shape == (1, 2, 48, 80) and out["depth"].shape == (1, 1, 48, 80)


@pytest.mark.parametrize("size", [(640, 384), (320, 192)])
@pytest.mark.parametrize("batch", [1, 2])
def test_fused_onnx_contract(exported, size, batch):
    path, _ = exported[size]
    w, h = size
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("images", "tensor(uint8)", [h, w, 3])
    names = [o.name for o in sess.get_outputs()]
    assert names == ["drivable_area", "lane_lines", "depth", "detections"]
    outs = dict(zip(names, sess.run(None, {"images": real_frames(w, h)[:batch]}), strict=True))
    assert outs["drivable_area"].dtype == np.uint8 and outs["drivable_area"].shape == (batch, h, w)
    assert outs["lane_lines"].max() <= 1 and outs["drivable_area"].max() <= 1
    assert outs["depth"].dtype == np.float32 and outs["depth"].shape == (batch, h, w)
    cap = load_spec(DEFAULT_SPEC).head("depth").options["max_depth"]
    assert np.all(outs["depth"] > 0) and np.all(outs["depth"] <= cap)
    det = outs["detections"]
    assert det.dtype == np.float32 and det.shape == (batch, 100, 6)
    assert np.all(np.isfinite(det))
    assert np.all((det[..., 0] >= 0) & (det[..., 2] <= w) & (det[..., 1] >= 0) & (det[..., 3] <= h))
    assert set(np.unique(det[..., 5])) <= {0.0, 1.0, 2.0}


def test_metadata_and_card_travel_with_the_graph(exported):
    path, _ = exported[(640, 384)]
    meta = read_metadata(path)
    assert ModelSpec.from_dict(meta["spec"]) == load_spec(DEFAULT_SPEC)
    assert meta["input"] == {"name": "images", "layout": "NHWC", "dtype": "uint8", "color": "RGB", "width": 640,
                             "height": 384, "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0],
                             "normalised_in_graph": True}
    assert meta["canonical_fx"] == pytest.approx(554.256)
    assert meta["outputs"]["detections"]["classes"] == ["vehicle", "pedestrian", "cyclist"]
    assert meta["outputs"]["depth"]["units"] == "m"
    card = yaml.safe_load(path.with_suffix(".yaml").read_text())
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    weights = path.parent / "weights.safetensors"
    assert card["provenance"]["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert [t["name"] for t in card["tasks"]] == ["drivable_area", "lane_lines", "depth", "detections"]


def _parity(fused: FusedHydraNet, path: Path, frames: np.ndarray) -> dict[str, float]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = {k: v.numpy() for k, v in fused.named(torch.from_numpy(frames)).items()}
    got = dict(zip(fused.output_names, sess.run(None, {"images": frames}), strict=True))
    report = {}
    for name in ("drivable_area", "lane_lines"):
        report[name] = float(np.mean(ref[name] != got[name]))
        assert report[name] < 1e-3, f"{name}: {report[name]:.4%} of pixels differ"  # argmax ties only
    report["depth"] = float(np.abs(ref["depth"] - got["depth"]).max())
    assert report["depth"] < 1e-3, "depth differs by more than 1 mm"
    r, g = ref["detections"], got["detections"]
    report["scores"] = float(np.abs(np.sort(r[..., 4], axis=1) - np.sort(g[..., 4], axis=1)).max())
    assert report["scores"] < 1e-4
    # Rows whose score is clear of the K-th can be matched one to one; near-equal scores may swap order.
    worst = 0.0
    for b in range(len(r)):
        kth = r[b, -1, 4]
        for row in r[b][r[b, :, 4] > kth + 1e-3]:
            same_class = g[b][g[b, :, 5] == row[5]]
            worst = max(worst, float(np.abs(same_class[:, :4] - row[:4]).max(axis=1).min()))
    report["boxes_px"] = worst
    assert worst < 1e-2, f"boxes differ by {worst:.4f} px"
    return report


def test_torch_and_onnxruntime_agree_on_real_frames(exported):
    path, fused = exported[(640, 384)]
    with torch.no_grad():
        report = _parity(fused, path, real_frames(640, 384))
    print("parity (max abs diff / fraction of pixels):", report)


def test_parity_on_bdd_and_kitti_frames(exported, shared_assets):
    path, fused = exported[(320, 192)]
    frames = real_frames(320, 192, shared_assets)
    assert len(frames) >= 5
    with torch.no_grad():
        _parity(fused, path, frames)


def test_a_head_added_in_the_spec_alone_appears_in_the_export(tmp_path):
    doc = with_size(load_spec(DEFAULT_SPEC), 320, 192).to_dict()
    doc["heads"].append({"name": "sidewalk", "type": "segmentation", "classes": ["background", "sidewalk"]})
    path = export_onnx(ModelSpec.from_dict(doc), tmp_path / "plus.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = {o.name: o for o in sess.get_outputs()}
    assert "sidewalk" in outs and outs["sidewalk"].type == "tensor(uint8)"
    assert read_metadata(path)["outputs"]["sidewalk"]["classes"] == ["background", "sidewalk"]


def test_export_and_info_commands(tmp_path):
    out = subprocess.run(HYDRANET + ["export", str(NEKRASOV_SPEC), "-o", str(tmp_path / "n.onnx"), "--size",
                                     "320x192"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "n.onnx").is_file() and (tmp_path / "n.yaml").is_file()
    assert "Warning" not in out.stderr, out.stderr  # a normal export says what it wrote, nothing else
    info = subprocess.run(HYDRANET + ["info", str(tmp_path / "n.onnx"), "--size", "640x384"], capture_output=True,
                          text=True, timeout=300)
    assert info.returncode == 0, info.stderr
    assert "decoder" in info.stdout and "head segmentation" in info.stdout and "head depth" in info.stdout
    assert "output  depth" in info.stdout and "[batch, 384, 640]" in info.stdout
    total = next(line for line in info.stdout.splitlines() if line.startswith("total"))
    assert float(total.split()[-1]) > 1.0  # GFLOPs at 640x384
    odd = subprocess.run(HYDRANET + ["info", str(NEKRASOV_SPEC), "--size", "640by384"], capture_output=True,
                         text=True, timeout=120)
    assert odd.returncode == 2 and "size must be WxH, e.g. 640x384, got '640by384'" in odd.stderr
    bad = subprocess.run(HYDRANET + ["export", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "x.onnx")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "cannot read model spec" in bad.stderr


def test_every_head_kind_has_one_options_dataclass_with_the_heads_defaults():
    """core/tasks.py states each kind's options once: the model's head registry and the options registry cover
    the same kinds, and each head's keyword options are exactly its dataclass's fields, with the same defaults."""
    import dataclasses
    import inspect

    from hydranet_ros.core.tasks import DECODER_STRIDE, OPTIONS
    from hydranet_ros.model.decoder import LightWeightRefineNet
    from hydranet_ros.model.heads import HEADS

    assert set(HEADS) == set(OPTIONS) and LightWeightRefineNet.out_stride == DECODER_STRIDE
    for kind, head in HEADS.items():
        params = {p.name: p.default for p in inspect.signature(head.__init__).parameters.values()
                  if p.kind is inspect.Parameter.KEYWORD_ONLY}
        fields = {f.name: f.default for f in dataclasses.fields(OPTIONS[kind])}
        assert params == fields, kind


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_with_every_head_kind_exports_and_matches_torch(backbone, tmp_path):
    """The registries' product: each backbone with one head of each registered kind exports to ONNX, and ONNX
    Runtime gives what torch gives, output by output (compared by the output's kind from the contract)."""
    from hydranet_ros.model.heads import HEADS

    heads = [{"name": f"{kind}_head", "type": kind, **({"classes": ["a", "b"]} if cls.needs_classes else {})}
             for kind, cls in sorted(HEADS.items())]
    spec = ModelSpec.from_dict({"name": f"every_kind_{backbone}", "backbone": backbone, "pretrained_backbone": False,
                                "decoder": {"width": 32}, "input": {"width": 160, "height": 96}, "heads": heads})
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = HydraNet(spec).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "w.safetensors")
    path = export_onnx(spec, tmp_path / "every.onnx", weights=tmp_path / "w.safetensors")
    fused = FusedHydraNet(net).eval()
    frames = real_frames(160, 96)
    with torch.no_grad():
        ref = {k: v.numpy() for k, v in fused.named(torch.from_numpy(frames)).items()}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip(fused.output_names, sess.run(None, {"images": frames}), strict=True))
    kinds = {name: entry["kind"] for name, entry in read_metadata(path)["outputs"].items() if "kind" in entry}
    assert sorted(kinds.values()) == sorted(HEADS)
    for name, kind in kinds.items():
        if kind == "segmentation":
            assert np.mean(ref[name] != got[name]) < 1e-3, name  # argmax ties only
        elif kind == "depth":
            assert np.abs(ref[name] - got[name]).max() < 1e-3, name
        else:
            np.testing.assert_allclose(np.sort(ref[name][..., 4], axis=1), np.sort(got[name][..., 4], axis=1),
                                       atol=1e-4, err_msg=name)
