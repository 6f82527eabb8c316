"""How ONNX Runtime's CPU threads wait between operators and between runs, for every session the project opens
(the node's engine, the teachers, the benchmarks). Session config entries only: no onnxruntime import here.

Measured on the project's 2-core machine (bench/ort_threads.py; bench/README.md, "How ONNX Runtime's threads wait"),
the shipped model, one pass every 333 ms:
- ONNX Runtime's default keeps the worker threads spin-waiting after each run: 29 ms of CPU in the 100 ms after a
  70 ms pass, taken from whatever runs next (the node's DDS threads receiving frames, or the next of several
  interleaved sessions).
- No spinning at all makes every parallel operator wait for a thread wake-up: 76.8 ms a pass instead of 70.2.
- Spinning within a run and stopping when it ends (`session.force_spinning_stop`): 70.6 ms, and 0.1 ms of CPU
  after the run.
"""

from __future__ import annotations

from typing import Any

SESSION_CONFIG = {
    "session.intra_op.allow_spinning": "1",
    "session.force_spinning_stop": "1",
}


def configure(options: Any) -> Any:
    """Apply SESSION_CONFIG to an onnxruntime.SessionOptions; returns it."""
    for key, value in SESSION_CONFIG.items():
        options.add_session_config_entry(key, value)
    return options
