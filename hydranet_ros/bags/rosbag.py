"""rosbag2 files without rosbag2: what replay, record, make-bag and the report share.

`rosbags` (pure Python) reads and writes rosbag2 in sqlite3 and MCAP storage. Its built-in Jazzy typestore knows
the core interfaces but not vision_msgs (nor any other package a user adds), so `typestore()` completes it from
the `.msg` files that every ROS 2 install puts in `share/<package>/msg/`: that is where a real Jazzy install and
our pip environment both keep them, and definitions read from there give the same RIHS01 type hashes as the
nodes that publish them (checked in the tests against the installed type description JSON).

No rclpy here: QoS conversion to and from rclpy lives with the code that owns a node (replay.py, record.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class BagError(RuntimeError):
    """A bag that cannot be opened or written, said in words a user can act on."""


def ament_prefixes() -> list[Path]:
    """Install prefixes to search for interface definitions: AMENT_PREFIX_PATH, then this Python's prefix (the pip
    environment is its own ROS prefix and does not always export AMENT_PREFIX_PATH)."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    seen: list[Path] = []
    for p in prefixes:
        if p not in seen:
            seen.append(p)
    return seen


def definition_file(msgtype: str) -> Path | None:
    """`pkg/msg/Name` -> the installed `share/pkg/msg/Name.msg`, or None."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        return None
    pkg, _, name = parts
    for prefix in ament_prefixes():
        path = prefix / "share" / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    return None


def _referenced(fields: list[tuple[str, Any]]) -> Iterable[str]:
    """The message types that a rosbags field list names (nested, in arrays or sequences)."""
    from rosbags.typesys.base import Nodetype

    for _, desc in fields:
        kind, arg = desc
        if kind == Nodetype.NAME:
            yield arg
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE) and arg[0][0] == Nodetype.NAME:
            yield arg[0][1]


def ensure_type(store: Any, msgtype: str) -> None:
    """Register `msgtype`, and every type it uses, from the installed .msg files when `store` lacks it.

    Raises BagError when a definition is not installed anywhere."""
    from rosbags.typesys import get_types_from_msg

    todo, found = [msgtype], {}
    while todo:
        name = todo.pop()
        if name in store.fielddefs or name in found:
            continue
        path = definition_file(name)
        if path is None:
            raise BagError(f"no definition of {name}: looked for share/{'/'.join(name.split('/')[:2])}/"
                           f"{name.split('/')[-1]}.msg under {', '.join(map(str, ament_prefixes()))}")
        types = get_types_from_msg(path.read_text(), name)
        found.update(types)
        for _, fields in types.values():
            todo.extend(_referenced(fields))
    if found:
        store.register(found)


def typestore(msgtypes: Iterable[str] = ()) -> Any:
    """rosbags' Jazzy typestore, completed with `msgtypes` (and what they use) from the installed definitions."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for name in msgtypes:
        ensure_type(store, name)
    return store


def storage_of(path: str | Path) -> str:
    """'mcap' or 'sqlite3' for a rosbag2 folder (from its metadata) or a bare .mcap/.db3 file."""
    path = Path(path)
    if path.is_file():
        return {".mcap": "mcap", ".db3": "sqlite3"}.get(path.suffix, "unknown")
    meta = path / "metadata.yaml"
    if meta.is_file():
        text = meta.read_text(errors="replace")
        return "mcap" if "storage_identifier: mcap" in text else "sqlite3"
    return "unknown"


def open_reader(path: str | Path, store: Any | None = None) -> Any:
    """An opened rosbags AnyReader over a rosbag2 folder (sqlite3 or MCAP) or a ROS 1 bag, with clear errors.

    Types that the bag carries definitions for are registered from the bag; `store` supplies the rest (default:
    `typestore()`). Close it, or use it as a context manager: `with open_reader(path) as reader:`."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.rosbag1 import ReaderError as Reader1Error
    from rosbags.rosbag2 import ReaderError as Reader2Error

    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at {path}")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is a folder without metadata.yaml: not a rosbag2 bag")
    class OpenedReader(AnyReader):
        def __enter__(self) -> OpenedReader:  # AnyReader's own would open it a second time
            return self

    reader = OpenedReader([path], default_typestore=store if store is not None else typestore())
    try:
        reader.open()
    except (AnyReaderError, Reader1Error, Reader2Error, OSError, ValueError) as exc:
        raise BagError(f"cannot read bag {path}: {exc}") from exc
    return reader


def message_class(msgtype: str) -> type:
    """`pkg/msg/Name` -> the generated Python class (`pkg.msg.Name`) that rclpy publishes and subscribes with.

    Replay and record never build messages from it; rclpy needs it only for the type support behind raw bytes."""
    import importlib

    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg" or not all(parts):
        raise BagError(f"{msgtype!r} is not a message type name of the form pkg/msg/Name")
    pkg, _, name = parts
    try:
        module = importlib.import_module(f"{pkg}.msg")
    except ImportError as exc:
        raise BagError(f"cannot use {msgtype}: the Python package {pkg} is not importable ({exc}); install its "
                       f"interfaces (ros-<distro>-{pkg.replace('_', '-')}) or build them into this environment"
                       ) from exc
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise BagError(f"cannot use {msgtype}: {pkg}.msg has no message {name} (another version of {pkg}?)")
    return cls
