"""Install hydranet_ros into a prefix's ament index the way `colcon build --symlink-install` does.

    python pip_env/ament_index.py PREFIX        e.g. .venv

`pip install -e .` (what set-up does) installs the Python package but not setup.py's data files, so `ros2 run`
and `ros2 launch` could not find the package. This adds what colcon's ament_python build installs, as symlinks
into the checkout so that edits show at once:

    share/ament_index/resource_index/packages/hydranet_ros
    share/hydranet_ros/{package.xml, launch/*, config/*, models/*}      (setup.py's data_files, one link per file)
    lib/hydranet_ros/hydranet_node                                     (the console script pip put in bin/)

Directories are real and files are linked one by one because `ros2 launch PKG FILE` searches the share folder
with os.walk, which does not follow linked directories. Links this script made earlier whose target is gone are
removed, so a deleted launch file does not linger.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hydranet_ros"
NODE_EXECUTABLES = ("hydranet_node",)


def data_files() -> list[tuple[str, list[str]]]:
    """setup.py's data_files: run it with setup() replaced by a recorder of its arguments (nothing is built)."""
    import runpy

    import setuptools

    arguments: dict = {}
    real_setup, setuptools.setup = setuptools.setup, lambda **kw: arguments.update(kw)
    cwd = os.getcwd()
    os.chdir(ROOT)  # setup.py globs relative paths
    try:
        runpy.run_path(str(ROOT / "setup.py"))
    finally:
        os.chdir(cwd)
        setuptools.setup = real_setup
    return arguments["data_files"]


def link(target: Path, at: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    if at.is_symlink() or at.exists():
        if at.is_symlink() and Path(os.readlink(at)) == target:
            return
        at.unlink()
    at.symlink_to(target)


def install(prefix: Path) -> list[Path]:
    wanted: list[Path] = []
    for destination, files in data_files():
        for f in files:
            wanted.append(prefix / destination / Path(f).name)
            link(ROOT / f, wanted[-1])
    for exe in NODE_EXECUTABLES:
        script = prefix / "bin" / exe
        if not script.exists():
            sys.exit(f"{script} is missing: install the package first (pip install -e .)")
        wanted.append(prefix / "lib" / PACKAGE / exe)
        link(Path("../../bin") / exe, wanted[-1])
    # Stale links from an earlier run: only links into this checkout, only in our own folders.
    for folder in (prefix / "share" / PACKAGE, prefix / "lib" / PACKAGE):
        for path in folder.rglob("*"):
            if path.is_symlink() and path not in wanted and not path.exists():
                path.unlink()
    return wanted


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    installed = install(Path(sys.argv[1]).resolve())
    print(f"[setup] {PACKAGE} in the ament index of {sys.argv[1]}: {len(installed)} files linked")


if __name__ == "__main__":
    main()
