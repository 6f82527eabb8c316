"""Engines: run batches of uint8 RGB images through a model file and return its outputs as numpy arrays.

`load_engine` picks the engine by file type: an exported `.onnx` runs in ONNX Runtime (TensorRT, CUDA or CPU), a
torch checkpoint in torch (for training-time checks). Both return the same names, dtypes and shapes, as the model
contract says. Neither torch nor onnxruntime is imported until an engine is made, so importing this is cheap.

TensorRT engines take minutes to build, so they are never built when a node starts: the TensorRT provider is used
only when `hydranet build-engine` has put an engine for this exact model, GPU, TensorRT version and precision in the
cache; otherwise it is skipped with a warning saying how to build one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hydranet_ros.core import cpu_threads
from hydranet_ros.core.contract import CHECKPOINT_SUFFIXES, ModelContract, ModelError
from hydranet_ros.runtime.contract import load_contract

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
INPUT_NAME = "images"
DEFAULT_MAX_BATCH = 8
DEFAULT_ENGINE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hydranet_ros" / "engines"

Warn = Callable[[str], None]


def warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class Engine:
    """Runs uint8 RGB batches [B, H, W, 3] of the contract's input size; subclasses implement `_infer`."""

    contract: ModelContract
    description: str

    def __init__(self, contract: ModelContract) -> None:
        self.contract = contract
        self.description = ""
        self._dtypes = {name: np.dtype(out["dtype"]) for name, out in contract.outputs.items()}

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """{output name: array} for a uint8 RGB batch [B, H, W, 3]; dtypes as the contract says."""
        self._check(batch)
        outs = self._infer(np.ascontiguousarray(batch))
        # One place fixing the dtypes, so that every engine returns the same (torch fp16 gives float16 depth).
        return {name: np.asarray(outs[name], dtype=self._dtypes[name]) for name in self._dtypes}

    def warmup(self, batch_sizes: Sequence[int] = (1,), runs: int = 2) -> None:
        """Run zeros through at each batch size, so that the first real frame does not pay for allocations."""
        h, w = self.contract.input_height, self.contract.input_width
        for b in batch_sizes:
            zeros = np.zeros((b, h, w, 3), dtype=np.uint8)
            for _ in range(runs):
                self.run(zeros)

    def close(self) -> None:
        """Free the session or model (and its GPU memory); calling it again does nothing."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, batch: np.ndarray) -> None:
        h, w = self.contract.input_height, self.contract.input_width
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.ndim != 4 \
                or batch.shape[1:] != (h, w, 3) or batch.shape[0] < 1:
            got = f"{batch.dtype} {list(batch.shape)}" if isinstance(batch, np.ndarray) else type(batch).__name__
            raise ValueError(f"{self.contract.path.name} takes uint8 RGB images [B, {h}, {w}, 3] (B >= 1), got {got}; "
                             f"resize to {w}x{h} first")

    def _infer(self, batch: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.contract.path.name}: {self.description}>"


# ---------------------------------------------------------------------------------------------------------------
# TensorRT engine cache


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "unknown"


def engine_cache_key(sha256: str, gpu: str, trt_version: str, precision: str) -> str:
    """A readable directory name: an engine is valid for one model, GPU, TensorRT version and precision only."""
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, got {precision!r}")
    return f"{_slug(gpu)}_trt{_slug(trt_version)}_{precision}_{sha256[:16]}"


def gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=5)
        name = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else ""
        if name:
            return name
    except (OSError, subprocess.SubprocessError):
        pass
    # Jetsons have no nvidia-smi (or one without --query-gpu); the board names the GPU there.
    try:
        model = Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return None
    return model if "jetson" in model.lower() else None


def tensorrt_version() -> str | None:
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except ImportError:
        pass
    # ONNX Runtime's TensorRT provider needs only the libraries, not the Python package: ask libnvinfer itself.
    import ctypes

    for soname in ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"):
        try:
            v = int(ctypes.CDLL(soname).getInferLibVersion())
        except (OSError, AttributeError):
            continue
        major, rest = (v // 10000, v % 10000) if v >= 10000 else (v // 1000, v % 1000)  # 10.3.0 = 100300, 8.6.1 = 8601
        return f"{major}.{rest // 100}.{rest % 100}"
    return None


def trt_cache_dir(contract: ModelContract, cache_root: Path | None, fp16: bool) -> Path:
    key = engine_cache_key(contract.sha256, gpu_name() or "unknown-gpu", tensorrt_version() or "unknown",
                           "fp16" if fp16 else "fp32")
    return Path(cache_root or DEFAULT_ENGINE_CACHE).expanduser() / key


def trt_engine_ready(cache_dir: Path) -> bool:
    """Whether `cache_dir` holds a built TensorRT engine (ONNX Runtime names them *.engine)."""
    return Path(cache_dir).is_dir() and any(Path(cache_dir).glob("*.engine"))


BUILD_RECORD = "hydranet_build.yaml"  # written by `hydranet build-engine` beside the engine


def built_max_batch(cache_dir: Path) -> int | None:
    """The max batch `hydranet build-engine` built the engine in `cache_dir` for; None if it left no record.

    The profile is not part of the cache key, and ONNX Runtime may rebuild (minutes) an engine whose profile differs
    from the one asked for, so a different max batch is caught before the session starts."""
    import yaml

    try:
        return int(yaml.safe_load((Path(cache_dir) / BUILD_RECORD).read_text())["max_batch"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------------------
# Engines


class OrtEngine(Engine):
    """An exported .onnx in ONNX Runtime, on the first usable provider of `providers` (keys of PROVIDERS)."""

    def __init__(self, contract: ModelContract, *, providers: Sequence[str] = ("cpu",), fp16: bool = False,
                 engine_cache_dir: Path | None = None, threads: int = 0, max_batch: int = DEFAULT_MAX_BATCH,
                 build: bool = False, warn: Warn = warn_stderr) -> None:
        import onnxruntime as ort

        super().__init__(contract)
        self.max_batch = max_batch
        self.trt_cache: Path | None = None
        requested = [providers] if isinstance(providers, str) else list(providers)  # "cpu" is not ("c", "p", "u")
        chosen = self._providers(ort, contract, requested, fp16, engine_cache_dir, max_batch, build, warn)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # Spin-wait within a run, not after it: the node's DDS threads share the cores (core/cpu_threads.py).
        cpu_threads.configure(options)
        try:
            self._session: Any = ort.InferenceSession(str(contract.path), options, providers=chosen)
        # ONNX Runtime raises its own exception types (InvalidProtobuf, InvalidGraph, Fail, ...), none shared.
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"onnxruntime cannot load {contract.path} with {[p for p, _ in chosen]}: {exc}") from None
        used = self._session.get_providers()[0]
        if used != chosen[0][0]:  # ORT falls back to CPU by itself when a provider fails to start
            warn(f"asked for {chosen[0][0]} but onnxruntime runs {contract.path.name} on {used}")
        if fp16 and used != PROVIDERS["tensorrt"]:
            warn(f"fp16 applies to TensorRT only; {used} runs the model in fp32")
        self.provider = used
        self.uses_tensorrt = used == PROVIDERS["tensorrt"]
        names = [o.name for o in self._session.get_outputs()]
        if sorted(names) != sorted(contract.outputs) or self._session.get_inputs()[0].name != INPUT_NAME:
            self.close()
            raise ModelError(f"{contract.path}: graph outputs {names} do not match its contract "
                             f"{list(contract.outputs)}; re-export it")
        self._output_names = names
        precision = " fp16" if self.uses_tensorrt and fp16 else ""
        self.description = f"onnxruntime {ort.__version__} {used}{precision}"

    def _providers(self, ort: Any, contract: ModelContract, requested: list[str], fp16: bool, cache_root: Path | None,
                   max_batch: int, build: bool, warn: Warn) -> list[tuple[str, dict[str, Any]]]:
        unknown = [p for p in requested if p not in PROVIDERS]
        if unknown or not requested:
            raise ValueError(f"unknown execution provider(s) {unknown or requested}; valid: {', '.join(PROVIDERS)}")
        available = ort.get_available_providers()
        usable = []
        for key in dict.fromkeys(requested):  # in order, without repeats
            if PROVIDERS[key] in available:
                usable.append(key)
            else:
                warn(f"{key} ({PROVIDERS[key]}) is not available in this onnxruntime build "
                     f"(available: {', '.join(available)})")
        chosen: list[tuple[str, dict[str, Any]]] = []
        for i, key in enumerate(usable):
            if key == "tensorrt":
                following = usable[i + 1] if i + 1 < len(usable) else "nothing"
                trt = self._tensorrt_options(contract, cache_root, fp16, max_batch, build, warn, following)
                if trt is not None:
                    chosen.append((PROVIDERS[key], trt))
            elif key == "cuda":
                chosen.append((PROVIDERS[key], {"device_id": 0}))
            else:
                chosen.append((PROVIDERS[key], {}))
        if not chosen:
            raise ModelError(f"none of the requested execution providers ({', '.join(requested)}) can run "
                             f"{contract.path.name} here (available: {', '.join(available)}); add 'cpu' to fall back")
        return chosen

    def _tensorrt_options(self, contract: ModelContract, cache_root: Path | None, fp16: bool, max_batch: int,
                          build: bool, warn: Warn, following: str) -> dict[str, Any] | None:
        """The TensorRT provider's options, or None (with a warning) where using it would build an engine."""
        cache = trt_cache_dir(contract, cache_root, fp16)
        fp16_flag = " --fp16" if fp16 else ""
        if not build and not trt_engine_ready(cache):
            warn(f"no TensorRT engine for this model/GPU/TensorRT/precision in {cache}; build it once with "
                 f"`hydranet build-engine {contract.path}{fp16_flag}`; using {following}")
            return None
        built = built_max_batch(cache)
        if not build and built is not None and built != max_batch:
            warn(f"the TensorRT engine in {cache} was built for max batch {built}, not {max_batch}; use max batch "
                 f"{built}, or rebuild with `hydranet build-engine {contract.path} --max-batch {max_batch}{fp16_flag}`;"
                 f" using {following}")
            return None
        cache.mkdir(parents=True, exist_ok=True)
        self.trt_cache = cache
        h, w = contract.input_height, contract.input_width
        return {
            "device_id": 0, "trt_fp16_enable": fp16,
            "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache),
            # One profile over the dynamic batch; opt at 1: one camera's frame is the common case.
            "trt_profile_min_shapes": f"{INPUT_NAME}:1x{h}x{w}x3",
            "trt_profile_opt_shapes": f"{INPUT_NAME}:1x{h}x{w}x3",
            "trt_profile_max_shapes": f"{INPUT_NAME}:{max_batch}x{h}x{w}x3",
        }

    def _infer(self, batch: np.ndarray) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("engine is closed")
        if self.uses_tensorrt and batch.shape[0] > self.max_batch:
            # Outside its profile ONNX Runtime fails or rebuilds the engine (minutes): say so before that.
            raise ValueError(f"batch of {batch.shape[0]} exceeds the TensorRT engine's max batch {self.max_batch}")
        return dict(zip(self._output_names, self._session.run(None, {INPUT_NAME: batch}), strict=True))

    def close(self) -> None:
        self._session = None


class TorchEngine(Engine):
    """A torch checkpoint run as the fused network: for checks without an export (training, parity) and for the
    GPU without ONNX Runtime's CUDA build. The GPU options (bench/gpu.py measures each):

    - precision: fp32, fp16 or bf16 through autocast (the graph still normalises uint8 and decodes boxes in fp32);
    - channels_last: the weights in NHWC memory order, which cuDNN's tensor-core convolutions prefer (the uint8
      NHWC input is channels-last already once permuted);
    - cuda_graphs: each batch size's pass captured once as a CUDA graph and replayed (one launch instead of
      hundreds: the small network is launch-bound at batch 1); the graph's fixed shapes suit it, top-K and the
      in-graph NMS included;
    - compile_mode: torch.compile with that mode ("default", "reduce-overhead", "max-autotune").
    """

    PRECISIONS = ("fp32", "fp16", "bf16")

    def __init__(self, contract: ModelContract, *, fp16: bool = False, precision: str | None = None,
                 channels_last: bool = False, cuda_graphs: bool = False, compile_mode: str = "",
                 device: str = "auto", threads: int = 0, warn: Warn = warn_stderr) -> None:
        import torch

        from hydranet_ros.model.backbones import WeightsError
        from hydranet_ros.model.export import load_weights
        from hydranet_ros.model.hydra import FusedHydraNet, HydraNet
        from hydranet_ros.model.spec import ModelSpec

        super().__init__(contract)
        precision = precision or ("fp16" if fp16 else "fp32")
        if precision not in self.PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(self.PRECISIONS)}, got {precision!r}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device {device} asked for, but torch {torch.__version__} sees no CUDA GPU")
        if precision == "fp16" and device == "cpu":
            warn("fp16 needs CUDA; the torch engine runs in fp32 on the CPU")
            precision = "fp32"
        if cuda_graphs and device == "cpu":
            warn("CUDA graphs need CUDA; the torch engine runs without them on the CPU")
            cuda_graphs = False
        if threads > 0:
            torch.set_num_threads(threads)  # process-wide: torch has no per-module thread count
        net = HydraNet(ModelSpec.from_dict(contract.spec, source=str(contract.path)), backbone_weights=False)
        try:
            load_weights(net, contract.path)
        except WeightsError as exc:
            raise ModelError(str(exc)) from None
        self._torch = torch
        self._device = torch.device(device)
        self._dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        # eval() before wrapping: FusedHydraNet runs a probe batch, which in train mode would overwrite the
        # BatchNorm running statistics just loaded.
        model: Any = FusedHydraNet(net.eval()).eval().to(self._device)
        self._output_names = list(model.output_names)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if compile_mode:
            model = torch.compile(model, mode=compile_mode)
        self._model = model
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}  # batch size -> (graph, its input, its outputs)
        self._cuda_graphs = cuda_graphs
        options = [precision] + [o for o, on in (("channels-last", channels_last), ("cuda-graphs", cuda_graphs),
                                                (f"compile={compile_mode}", compile_mode)) if on]
        self.description = f"torch {torch.__version__} {device} {' '.join(options)}"

    def _autocast(self) -> Any:
        return self._torch.autocast(self._device.type, self._dtype or self._torch.float32,
                                    enabled=self._dtype is not None)

    def _forward(self, x: Any) -> Any:
        with self._torch.inference_mode(), self._autocast():
            return self._model(x)

    def _replay(self, x: Any) -> Any:
        """The pass as a CUDA graph of this batch size: captured on first use (after warm-up runs on a side
        stream, as capture requires), then its input is overwritten and the graph replayed."""
        torch = self._torch
        if x.shape[0] not in self._graphs:
            static_in = x.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.no_grad(), self._autocast():
                for _ in range(3):
                    self._model(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), self._autocast(), torch.cuda.graph(graph):
                static_out = self._model(static_in)
            self._graphs[x.shape[0]] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[x.shape[0]]
        static_in.copy_(x)
        graph.replay()
        return static_out

    def _infer(self, batch: np.ndarray) -> dict[str, Any]:
        if self._model is None:
            raise RuntimeError("engine is closed")
        torch = self._torch
        x = torch.from_numpy(batch).to(self._device)
        outs = self._replay(x) if self._cuda_graphs else self._forward(x)
        # numpy has no bfloat16, and the node's consumers expect fp32 where the network computed in half.
        return {n: t.float().cpu().numpy() if t.dtype in (torch.float16, torch.bfloat16) else t.cpu().numpy()
                for n, t in zip(self._output_names, outs, strict=True)}

    def close(self) -> None:
        if getattr(self, "_model", None) is not None:
            self._model = None
            self._graphs.clear()
            if self._device.type == "cuda":
                self._torch.cuda.empty_cache()


def load_engine(model_path: Path, *, providers: Sequence[str] = ("cpu",), fp16: bool = False,
                engine_cache_dir: Path | None = None, threads: int = 0, device: str = "auto",
                max_batch: int = DEFAULT_MAX_BATCH, warn: Warn = warn_stderr) -> Engine:
    """The engine for `model_path` after checking its contract: .onnx -> OrtEngine, a checkpoint -> TorchEngine."""
    contract = load_contract(Path(model_path))
    if contract.path.suffix in CHECKPOINT_SUFFIXES:
        return TorchEngine(contract, fp16=fp16, device=device, threads=threads, warn=warn)
    return OrtEngine(contract, providers=providers, fp16=fp16, engine_cache_dir=engine_cache_dir, threads=threads,
                     max_batch=max_batch, warn=warn)
