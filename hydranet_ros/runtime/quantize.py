"""int8 for the CPU: ONNX Runtime static quantization of an exported HydraNet (QDQ format, per-channel int8
weights, uint8 activations, ranges calibrated on real frames), keeping in float what quantization would hurt.

What stays float, and why:
- everything but convolutions (op_types: Conv only): the in-graph normalisation, resizes, pooling, sigmoid/exp,
  top-K, box decoding and NMS are cheap or exact-only, and an int8 Resize or Add costs more in Q/DQ pairs than it
  saves;
- each head's output convolution (the last Conv on the way to each graph output): its values are the published
  masks' logits, the depth, the box scores and sizes, where an 8-bit grid shows directly (depth rounded to steps,
  scores near the threshold flipping).

The quantized graph keeps the exported model's contract (metadata `hydranet`), so the node, eval and the
benchmarks take it like any model; its card (written by the caller) says what was done.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hydranet_ros import __version__
from hydranet_ros.core.contract import read_metadata, write_metadata

INPUT_NAME = "images"


def downstream(model: Any, names: list[str]) -> list[str]:
    """Every node fed, directly or not, by the nodes `names`: a head's decoding (sigmoid, exp, peak picking by
    max-pool equality, top-K, NMS), which must stay exact."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    by_name = {n.name: n for n in model.graph.node}
    found: list[str] = []
    stack = [t for n in names for t in by_name[n].output]
    while stack:
        for node in consumers.get(stack.pop(), []):
            if node.name not in found and node.name not in names:
                found.append(node.name)
                stack.extend(node.output)
    return found


def output_convolutions(model: Any) -> list[str]:
    """Names of the Conv nodes nearest to each graph output, walking producers back through non-Conv nodes."""
    producer = {out: node for node in model.graph.node for out in node.output}
    found: list[str] = []
    for output in model.graph.output:
        stack, seen = [output.name], set()
        while stack:
            tensor = stack.pop()
            node = producer.get(tensor)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type == "Conv":
                if node.name not in found:
                    found.append(node.name)
                continue
            stack.extend(node.input)
    return found


class _Frames:
    """ONNX Runtime's CalibrationDataReader over uint8 NHWC batches."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(source: Path, target: Path, batches: Iterable[np.ndarray], method: str = "minmax",
                  keep_float: Iterable[str] = (), op_types: Iterable[str] = ("Conv",)) -> dict[str, Any]:
    """Write the int8 form of `source` to `target`, calibrated on `batches`; returns what was done (for the card):
    format, weights, activations, calibration method, the nodes kept float and the count quantized."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ValueError(f"calibration method must be one of {', '.join(methods)}, got {method!r}")
    meta = read_metadata(source)  # refuses a graph that is not ours before any work
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and graph clean-up first, as ONNX Runtime recommends before static quantization.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        outputs = output_convolutions(model)
        excluded = outputs + downstream(model, outputs) + [n for n in keep_float if n]
        nodes = {n.name: n.op_type for n in model.graph.node}
        unknown = set(excluded) - set(nodes)
        if unknown:
            raise ValueError(f"no node named {sorted(unknown)} in {source.name}")
        convs = [n for n, op in nodes.items() if op == "Conv"]
        quantize_static(
            str(prepared), str(target), _Frames(batches), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded, calibrate_method=methods[method],
            # Percentile and entropy keep a histogram per tensor; ORT's default of 2048 bins is plenty here.
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    write_metadata(target, {**meta, "precision": "int8"}, ("hydranet_ros", __version__))
    return {"format": "QDQ (ONNX Runtime static quantization)", "weights": "int8, per output channel",
            "activations": "uint8, per tensor", "operators": list(op_types), "calibration_method": method,
            "convolutions_int8": len(set(convs) - set(excluded)),
            "kept_float": {"head_outputs": outputs, "decoding_nodes": len(excluded) - len(outputs),
                           "asked": [n for n in keep_float if n]}}
