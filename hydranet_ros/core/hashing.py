"""The one file hash of the project: model cards record it at export, the runtime checks it before loading.

Its own module (stdlib only) so that model/ (torch) and runtime/ (no torch) share it without depending on each
other."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
