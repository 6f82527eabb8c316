"""hydranet build-engine MODEL.onnx [--fp16]: build the TensorRT engine for this GPU once, into the engine cache."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
import time
from pathlib import Path

DESCRIPTION = """\
Build the TensorRT engine of an exported model for this machine's GPU and TensorRT version, and cache it.

TensorRT compiles the ONNX graph for one GPU, one TensorRT version and one precision; that takes minutes. The
node and the other tools never do it by themselves: a vehicle must not sit for minutes at start because its
cache was empty, so without a cached engine they warn and run on CUDA or the CPU instead. Run this once per model,
machine and precision (again after a TensorRT or driver upgrade); the node then finds the engine in the cache.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Defaults are spelled out rather than imported from runtime.engines: `hydranet --help` imports this module,
    # and must stay quick.
    p.description = DESCRIPTION
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("model", type=Path, help="exported model (.onnx, with its card .yaml beside it)")
    p.add_argument("--fp16", action="store_true", help="build in fp16 (faster on GPUs with tensor cores; the node "
                   "uses the engine only when its fp16 setting matches)")
    p.add_argument("--cache-dir", type=Path, help="engine cache; one folder per model/GPU/TensorRT/precision "
                   "(default: $XDG_CACHE_HOME/hydranet_ros/engines, i.e. ~/.cache/hydranet_ros/engines)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="largest batch the engine takes (images from several cameras at once; default: %(default)s)")


class _Elapsed:
    """A line showing the seconds spent so far, redrawn from a thread while the main thread waits on TensorRT."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw, daemon=True)
        self._start = 0.0

    def _draw(self) -> None:
        frames = "|/-\\"
        i = 0
        while not self._stop.wait(0.25):
            print(f"\r{frames[i % 4]} {self.what} ... {time.monotonic() - self._start:.0f} s", end="",
                  file=sys.stderr, flush=True)
            i += 1

    def __enter__(self) -> _Elapsed:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        print(f"\r{self.what}: {time.monotonic() - self._start:.0f} s", file=sys.stderr, flush=True)


def _batch_sizes(max_batch: int) -> list[int]:
    sizes = {1, max_batch}
    b = 2
    while b < max_batch:
        sizes.add(b)
        b *= 2
    return sorted(sizes)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import onnxruntime as ort
    import yaml

    from hydranet_ros.core.contract import ModelError
    from hydranet_ros.core.progress import show_progress
    from hydranet_ros.runtime import engines
    from hydranet_ros.runtime.contract import load_contract

    def fail(message: str) -> int:
        print(f"hydranet build-engine: {message}", file=sys.stderr)
        return 2

    if args.max_batch < 1:
        return fail(f"--max-batch must be >= 1, got {args.max_batch}")
    if args.model.suffix != ".onnx":
        return fail(f"{args.model}: TensorRT engines are built from an exported .onnx (hydranet export)")
    try:
        contract = load_contract(args.model)
    except ModelError as exc:
        return fail(str(exc))
    available = ort.get_available_providers()
    if engines.PROVIDERS["tensorrt"] not in available:
        return fail(f"this onnxruntime {ort.__version__} has no TensorRT ({engines.PROVIDERS['tensorrt']}); available: "
                    f"{', '.join(available)}. Build engines on the target machine, with onnxruntime-gpu and TensorRT")
    cache_root = (args.cache_dir or engines.DEFAULT_ENGINE_CACHE).expanduser()
    gpu, trt = engines.gpu_name(), engines.tensorrt_version()
    precision = "fp16" if args.fp16 else "fp32"
    cache = engines.trt_cache_dir(contract, cache_root, args.fp16)
    w, h = contract.input_width, contract.input_height
    print(f"building the TensorRT engine of {contract.path} ({contract.name}, {w}x{h}, batch 1..{args.max_batch}, "
          f"{precision}) for {gpu or 'an unnamed GPU'}, TensorRT {trt or 'of unknown version'}; this takes minutes")

    try:
        with _Elapsed("building the TensorRT engine"):
            engine = engines.OrtEngine(contract, providers=("tensorrt", "cuda"), fp16=args.fp16,
                                       engine_cache_dir=cache_root, max_batch=args.max_batch, build=True)
            # TensorRT may build on the first run rather than at session creation: keep it under the timer too.
            engine.run(np.zeros((1, h, w, 3), dtype=np.uint8))
    except (ModelError, ValueError) as exc:
        return fail(str(exc))
    try:
        if not engine.uses_tensorrt:
            return fail(f"onnxruntime did not start TensorRT ({engine.description}); see its messages above")
        for b in show_progress(_batch_sizes(args.max_batch), desc="checking batch sizes", unit="batch size"):
            engine.run(np.zeros((b, h, w, 3), dtype=np.uint8))
    finally:
        engine.close()
    if not engines.trt_engine_ready(cache):
        return fail(f"TensorRT ran but left no *.engine file in {cache}")
    # The record lets the runtime refuse an engine built for another max batch instead of rebuilding it at start.
    record = {"model": str(contract.path), "sha256": contract.sha256, "gpu": gpu, "tensorrt": trt,
              "precision": precision, "max_batch": args.max_batch, "input": f"{w}x{h}",
              "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    (cache / engines.BUILD_RECORD).write_text(yaml.safe_dump(record, sort_keys=False))
    print(f"engine cached in {cache}\nkey {cache.name}")
    print(f"the node uses it with providers [tensorrt, ...]{' and fp16: true' if args.fp16 else ''} on this machine")
    return 0
