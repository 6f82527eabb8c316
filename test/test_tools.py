"""The `hydranet` command: every verb has --help, and the main job (demo) runs end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hydranet_ros.tools.cli import VERBS

HYDRANET = [str(Path(sys.executable).parent / "hydranet")]
SAMPLE = Path(__file__).resolve().parents[1] / "hydranet_ros" / "samples" / "project_video_0750.jpg"


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(HYDRANET + args, capture_output=True, text=True, timeout=120, **kw)


def test_help_lists_every_verb():
    out = run(["--help"])
    assert out.returncode == 0, out.stderr
    for verb in VERBS:
        assert verb in out.stdout


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help(verb):
    out = run([verb, "--help"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: hydranet " + verb)


def test_unknown_verb_is_an_error_that_lists_the_verbs():
    out = run(["frobnicate"])
    assert out.returncode == 2
    assert "invalid choice: 'frobnicate'" in out.stderr and "demo" in out.stderr


def test_params_check_reports_problems_with_a_users_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("/**:\n  ros__parameters:\n    mode: turbo\n    camera_names: [front, rear]\n")
    out = run(["params", "--file", str(f)])
    assert out.returncode == 2
    assert "mode must be one of live, replay; got 'turbo'" in out.stderr
    assert "cameras.rear.image_topic is required" in out.stderr  # the rest of rear's come from camera_defaults
    assert "cameras.front.image_topic" not in out.stderr


@pytest.mark.parametrize("name", ["hydranet_multi_camera.yaml", "hydranet_compressed.yaml"])
def test_shipped_params_files_pass_the_check_over_the_defaults(name):
    out = run(["params", "--file", str(Path(__file__).resolve().parents[1] / "config" / name)])
    assert out.returncode == 0, out.stderr
    assert "OK (" in out.stdout


def test_output_piped_into_head_ends_quietly(ros):
    out = subprocess.run(f"'{HYDRANET[0]}' publish-image '{SAMPLE}' --loop --rate 50 --wait-subscribers 0 | head -n 1",
                         shell=True, capture_output=True, text=True, timeout=60, env=ros.env())
    assert out.stdout.startswith("published project_video_0750.jpg 1280x720")
    assert "Traceback" not in out.stderr, out.stderr


def test_env_finds_every_component():
    out = run(["env"])
    assert out.returncode == 0, out.stderr
    assert "MISSING" not in out.stdout, out.stdout
    for name in ("rclpy", "vision_msgs", "torch", "onnxruntime", "opencv"):
        assert name in out.stdout


def test_readme_recipe_and_spec_tables_are_the_schemas():
    """The README's reference of recipe and spec keys is what `hydranet train --schema` prints, and that is built
    from the very fields the recipe and the spec are checked against: a key added to a schema must reach the
    README, and every head option of every kind has its meaning written down."""
    from hydranet_ros.model.spec import HEAD, SPEC
    from hydranet_ros.train.config import RECIPE

    out = run(["train", "--schema"])
    assert out.returncode == 0, out.stderr
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert out.stdout.strip() in readme, "README's recipe/spec tables are stale: paste `hydranet train --schema`"
    for field in (*RECIPE, *SPEC, *HEAD):
        assert f"| `{field.name}` |" in out.stdout
    assert "| detection | `nms_iou` | `0.5` |" in out.stdout


def test_a_recipe_with_several_mistakes_names_each_with_the_valid_choices(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: nowhere.yaml\nsteps: -3\namp: maybe\noptimiser: {lr: 1}\n"
                      "data: {train: [], crop: [300, 200], augment: {snow: 1}}\nexport_weights: middle\n")
    out = run(["train", str(recipe)])
    assert out.returncode == 2
    for needle in ("model: spec nowhere.yaml does not exist", "steps: must be >= 1, got -3",
                   "amp: must be one of auto, on, off; got 'maybe'", "unknown key 'optimiser' (known: amp, "
                   "batch_size", "data.train: needs at least one manifest", "data.crop: expected [W, H], multiples "
                   "of 32, got [300, 200]", "data.augment: unknown key(s) ['snow']",
                   "export_weights: must be one of best, last; got 'middle'"):
        assert needle in out.stderr, (needle, out.stderr)
