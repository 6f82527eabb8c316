"""`hydranet train`: a short real run lowers every task's loss, unlabelled tasks get no gradient, checkpoints resume
and export into a model the runtime runs (real sim + KITTI frames, real ONNX Runtime)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, sim_sample
from hydranet_ros.train.config import ConfigError, load_config
from hydranet_ros.train.data import Batch, collate
from hydranet_ros.train.manifest import Sample, write_manifest
from hydranet_ros.train.trainer import Trainer

SMALL_SPEC = {  # the default heads on a 256x160 input: the same code paths at a fraction of the cost
    **yaml.safe_load((REPO / "config" / "models" / "hydranet_effl0_road.yaml").read_text()),
    "input": {"width": 256, "height": 160},
}


def kitti_sample(shared, frame: str) -> Sample:
    from hydranet_ros.train.importers import import_kitti

    return next(s for s in import_kitti(shared / "kitti") if s.image.stem == frame)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared_assets):
    """Manifests of 4 sim frames (all tasks) and 2 KITTI frames (boxes + LiDAR depth), and a recipe."""
    d = tmp_path_factory.mktemp("train")
    write_manifest(d / "sim.jsonl", [sim_sample(shared_assets, f"{i:06d}") for i in (30, 400, 800, 1200)])
    write_manifest(d / "kitti.jsonl", [kitti_sample(shared_assets, f) for f in ("000008", "000001")])
    write_manifest(d / "val.jsonl", [sim_sample(shared_assets, "000600")])
    (d / "spec.yaml").write_text(yaml.safe_dump(SMALL_SPEC))
    return d


def recipe(d, **overrides) -> dict:
    doc = {
        "model": str(d / "spec.yaml"),
        "data": {"train": [{"manifest": "sim.jsonl", "weight": 2}, {"manifest": "kitti.jsonl", "weight": 1}],
                 "val": ["val.jsonl"], "crop": [192, 128],
                 "augment": {"scale": [0.9, 1.1], "flip": True, "colour": 0.1}},
        "steps": 6, "batch_size": 3, "workers": 0, "eval_every": 6, "checkpoint_every": 3, "log_every": 1,
        "optimizer": {"lr": 0.003, "backbone_lr": 0.001, "warmup_steps": 1},
        "out": str(d / "run"), "seed": 1,
    }
    doc.update(overrides)
    (d / "recipe.yaml").write_text(yaml.safe_dump(doc))
    return doc


def fixed_batch_losses(trainer: Trainer, batch: Batch) -> dict[str, float]:
    trainer.net.train()  # batch statistics, as in training; no update
    with torch.no_grad():
        raw = trainer.net(trainer.net.normalise(batch.image))
        return {t: float(v) for t, v in trainer.losses(raw, batch, trainer.device).items()}


def test_short_training_run_lowers_every_task_loss(run_dir) -> None:
    doc = recipe(run_dir, steps=25, eval_every=100, checkpoint_every=100,
                 data={"train": [{"manifest": "sim.jsonl"}, {"manifest": "kitti.jsonl"}], "crop": [192, 128],
                       "augment": {"scale": [1.0, 1.0], "flip": False, "colour": 0.0, "hue_deg": 0.0}},
                 weighting={"name": "fixed"}, out=str(run_dir / "overfit"))
    trainer = Trainer(load_config(run_dir / "recipe.yaml"), progress=False, log=lambda _m: None)
    # One batch holding every sample: every task is present in it.
    batch = collate([trainer.train_set[i] for i in range(len(trainer.train_set))])
    assert all(bool(tb.present.any()) for tb in batch.tasks.values())
    before = fixed_batch_losses(trainer, batch)
    for _ in range(doc["steps"]):
        trainer.train_step(batch)
        trainer.step += 1
    after = fixed_batch_losses(trainer, batch)
    for task in before:
        assert after[task] < 0.8 * before[task], f"{task}: loss {before[task]:.3f} -> {after[task]:.3f}"


def test_task_absent_from_the_batch_gets_exactly_zero_gradient(run_dir) -> None:
    recipe(run_dir, weighting={"name": "uncertainty"})
    trainer = Trainer(load_config(run_dir / "recipe.yaml"), progress=False, log=lambda _m: None)
    kitti_only = [i for i, s in enumerate(trainer.train_set.samples) if "lane_lines" not in s.labels]
    batch = collate([trainer.train_set[i] for i in kitti_only])
    assert not batch.tasks["lane_lines"].present.any() and batch.tasks["detections"].present.all()
    trainer.net.eval()  # fixed BatchNorm statistics, so the two backward passes below see the same function
    raw = trainer.net(trainer.net.normalise(batch.image))
    losses = trainer.losses(raw, batch, trainer.device)
    total, _ = trainer.weighting.combine(losses)
    total.backward()
    for name, p in trainer.net.heads["lane_lines"].named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0, name
    for name in ("drivable_area", "lane_lines"):  # no labels: the loss is an attached exact zero
        assert float(losses[name]) == 0.0
    shared = [p for p in trainer.net.decoder.parameters()]
    with_absent = [p.grad.clone() for p in shared]
    trainer.net.zero_grad()
    raw = trainer.net(trainer.net.normalise(batch.image))
    losses = trainer.losses(raw, batch, trainer.device)
    present_only = {t: v for t, v in losses.items() if batch.tasks[t].present.any()}
    trainer.weighting.combine(present_only)[0].backward()
    for a, b in zip(with_absent, [p.grad for p in shared], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert trainer.net.heads["detections"].heat.out.weight.grad.abs().sum() > 0


TRAINED_FILES = ("last.safetensors", "last.safetensors.yaml", "last_state.pt", "best.safetensors", "train_log.csv",
                 "val_log.csv", "plots.png", "summary.json")


@pytest.fixture(scope="module")
def trained(run_dir) -> dict:
    """A 3-step run without export, then resumed to step 6 and exported: the run the resume and eval tests read
    (a fixture, so that neither test depends on the other having run)."""
    from hydranet_ros.tools.cli import main

    recipe(run_dir, steps=3, eval_every=3, checkpoint_every=3, out=str(run_dir / "trained"))
    path = run_dir / "trained.yaml"
    shutil.copy(run_dir / "recipe.yaml", path)  # its own copy: other tests rewrite recipe.yaml
    out = run_dir / "trained"
    first = main(["train", str(path), "--no-progress", "--no-export"])
    files_after_first = {f for f in TRAINED_FILES if (out / f).is_file()}
    exported_after_first = (out / "model.onnx").exists()
    resumed = main(["train", str(path), "--steps", "6", "--resume", "--no-progress"])
    return {"out": out, "exit_codes": (first, resumed), "files_after_first": files_after_first,
            "exported_after_first": exported_after_first}


def test_train_resume_export_and_run_through_the_runtime(run_dir, trained) -> None:
    from hydranet_ros.runtime.engines import load_engine

    out = trained["out"]
    assert trained["exit_codes"] == (0, 0)
    assert trained["files_after_first"] == set(TRAINED_FILES) and not trained["exported_after_first"]
    # Resumed to step 6: the log continues from step 4, the optimiser state is the saved one.
    steps = [int(r["step"]) for r in csv.DictReader((out / "train_log.csv").open())]
    assert steps == [1, 2, 3, 4, 5, 6]
    state = torch.load(out / "last_state.pt", weights_only=True)
    assert state["step"] == 6 and state["optimizer"]["state"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and "segmentation" in summary["validation"]

    # The exported model: its card carries the recipe and metrics, and ONNX Runtime matches the torch checkpoint.
    onnx_path = out / "model.onnx"
    card = yaml.safe_load(onnx_path.with_suffix(".yaml").read_text())
    assert card["provenance"]["training"]["steps"] == 6
    assert card["provenance"]["weights"]["file"] == "best.safetensors"
    assert "validation" in card["metrics"]
    engine = load_engine(onnx_path, providers=["cpu"])
    torch_engine = load_engine(out / "best.safetensors", providers=["cpu"], device="cpu")
    frame = collate([_val_item(run_dir)]).image.numpy()
    a, b = engine.run(frame), torch_engine.run(frame)
    assert set(a) == {"drivable_area", "lane_lines", "depth", "detections"}
    assert np.mean(a["drivable_area"] != b["drivable_area"]) < 1e-3
    np.testing.assert_allclose(a["depth"], b["depth"], atol=1e-3)


def _val_item(run_dir):
    from hydranet_ros.model.spec import load_spec
    from hydranet_ros.train.data import MultiTaskDataset
    from hydranet_ros.train.manifest import read_manifest

    return MultiTaskDataset(read_manifest(run_dir / "val.jsonl"), load_spec(run_dir / "spec.yaml"))[0]


def test_recipe_errors_are_listed_up_front(run_dir) -> None:
    doc = recipe(run_dir, steps=0, weighting={"name": "magic"}, freeze=[{"parts": ["wings"], "until": 5}],
                 colour=1)
    with pytest.raises(ConfigError) as err:
        load_config(run_dir / "recipe.yaml")
    msg = str(err.value)
    for expected in ("unknown key 'colour'", "steps: must be >= 1", "weighting: needs a name, one of fixed", "freeze"):
        assert expected in msg, msg
    doc.update(steps=2, weighting={"name": "fixed"}, freeze=[], losses={"depth": {"kind": "l2"}})
    del doc["colour"]
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="losses.depth.kind"):
        Trainer(load_config(run_dir / "recipe.yaml"), progress=False, log=lambda _m: None)


def test_eval_reports_every_task_for_onnx_and_checkpoint_alike(run_dir, trained, tmp_path, capsys) -> None:
    """`hydranet eval` on the exported model of the trained run and on its checkpoint: the same numbers."""
    from hydranet_ros.tools.cli import main

    out = trained["out"]
    assert trained["exit_codes"] == (0, 0)
    manifests = [str(run_dir / "val.jsonl"), str(run_dir / "kitti.jsonl")]
    assert main(["eval", str(out / "model.onnx"), *manifests, "--json", str(tmp_path / "onnx.json"),
                 "--markdown", str(tmp_path / "onnx.md"), "--no-progress"]) == 0
    assert main(["eval", str(out / "best.safetensors"), *manifests, "--json", str(tmp_path / "torch.json"),
                 "--no-progress"]) == 0
    a = json.loads((tmp_path / "onnx.json").read_text())
    b = json.loads((tmp_path / "torch.json").read_text())
    assert a["images"] == 3 and a["engine"].startswith("onnxruntime") and b["engine"].startswith("torch")
    assert set(a["results"]) == {"segmentation", "depth", "detection"}
    classes = a["results"]["detection"]["detections"]["classes"]
    assert set(classes) == {"vehicle", "pedestrian", "cyclist"} and classes["vehicle"]["num_gt"] > 5
    seg_a = a["results"]["segmentation"]["drivable_area"]["miou"]
    assert seg_a == pytest.approx(b["results"]["segmentation"]["drivable_area"]["miou"], abs=2e-3)
    assert a["results"]["depth"]["depth"]["abs_rel"] == pytest.approx(
        b["results"]["depth"]["depth"]["abs_rel"], rel=1e-3)
    assert "| drivable_area |" in (tmp_path / "onnx.md").read_text()
    assert main(["eval", str(out / "model.onnx"), str(run_dir / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_task_affinity_trains_every_single_task_and_pair(run_dir, tmp_path) -> None:
    from hydranet_ros.tools.cli import main

    recipe(run_dir, batch_size=2)
    out = tmp_path / "affinity"
    assert main(["task-affinity", str(run_dir / "recipe.yaml"), "--tasks", "drivable_area,depth,detections",
                 "--steps", "2", "--out", str(out)]) == 0
    report = json.loads((out / "affinity.json").read_text())
    assert sorted(report["runs"]) == sorted(["drivable_area", "depth", "detections", "drivable_area+depth",
                                             "drivable_area+detections", "depth+detections"])
    # Each run trained only its heads.
    card = yaml.safe_load((out / "drivable_area+depth" / "best.safetensors.yaml").read_text())
    assert [t["name"] for t in card["tasks"]] == ["drivable_area", "depth"]
    for task in report["tasks"]:
        assert set(report["gain"][task]) == set(report["tasks"]) - {task}
        assert all(v is None or isinstance(v, float) for v in report["gain"][task].values())
    assert report["alone"]["depth"] is not None and report["alone"]["depth"] > 0  # AbsRel of an untrained net
    md = (out / "affinity.md").read_text()
    assert md.count("\n| ") == 3 and "with depth" in md


@pytest.mark.parametrize("weighting, pcgrad", [("fixed", False), ("uncertainty", False), ("dwa", False),
                                               ("gradnorm", False), ("uncertainty", True)])
def test_every_weighting_runs_in_the_trainer(run_dir, weighting, pcgrad) -> None:
    """Each strategy trains through the real loop; the learned / dynamic ones move their weights, fixed does not."""
    recipe(run_dir, steps=6, eval_every=100, checkpoint_every=100, weighting={"name": weighting}, pcgrad=pcgrad,
           out=str(run_dir / f"w_{weighting}_{pcgrad}"))
    trainer = Trainer(load_config(run_dir / "recipe.yaml"), progress=False, log=lambda _m: None)
    before = trainer.weighting.task_weights().detach().clone()
    shared = trainer.net.decoder.parameters().__next__()
    start = shared.detach().clone()
    trainer.fit()
    after = trainer.weighting.task_weights().detach()
    assert not torch.equal(shared.detach(), start), "the shared decoder did not train"
    assert torch.isfinite(after).all()
    if weighting == "fixed":
        torch.testing.assert_close(after, before)
    else:
        assert not torch.allclose(after, before), f"{weighting} weights did not move: {after.tolist()}"
    rows = list(csv.DictReader((run_dir / f"w_{weighting}_{pcgrad}" / "train_log.csv").open()))
    assert len(rows) == 6 and all(float(r["total"]) > 0 for r in rows)


def test_torchrun_trains_with_two_processes_on_cpu(run_dir) -> None:
    """The DistributedDataParallel path (gloo on the CPU here; NCCL on GPUs): two real ranks, one report."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    recipe(run_dir, steps=2, batch_size=2, eval_every=2, checkpoint_every=2, out=str(run_dir / "ddp"))
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: a local rendezvous on a free port, so parallel runs on one machine do not collide.
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m",
                           "hydranet_ros.tools.cli", "train", str(run_dir / "recipe.yaml"), "--no-progress",
                           "--no-export"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained 2 steps") == 1, proc.stdout  # rank 0 alone reports
    state = torch.load(run_dir / "ddp" / "last_state.pt", weights_only=True)
    assert state["step"] == 2


def test_class_weights_and_augment_options_are_checked_up_front(tmp_path) -> None:
    from hydranet_ros.model.spec import load_spec
    from hydranet_ros.train.trainer import TaskLosses

    spec = load_spec(REPO / "config/models/hydranet_effl0_road.yaml")
    losses = TaskLosses(spec, {"detections": {"class_weights": {"pedestrian": 4, "cyclist": 3.5}}})
    assert losses.options["detections"]["class_weights"] == [1.0, 4.0, 3.5]  # in the head's class order
    for bad in ({"person": 2}, {"pedestrian": -1}, [4, 4]):
        with pytest.raises(ConfigError, match="class_weights"):
            TaskLosses(spec, {"detections": {"class_weights": bad}})
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [Sample(image=REPO / "hydranet_ros/samples/project_video_0750.jpg")])
    recipe = tmp_path / "r.yaml"
    for augment, message in (({"weather": {"night": 2}}, "night"), ({"roll_deg": 45}, "roll_deg"),
                             ({"snow": 1}, r"unknown key\(s\) \['snow'\]"),
                             ({"focus": {"classes": ["pedestrian"], "p": 2}}, "focus p")):
        recipe.write_text(yaml.safe_dump({"model": str(REPO / "config/models/hydranet_effl0_road.yaml"),
                                          "data": {"train": [str(manifest)], "augment": augment}}))
        with pytest.raises(ConfigError, match=message):
            load_config(recipe)
    recipe.write_text(yaml.safe_dump({"model": str(REPO / "config/models/hydranet_effl0_road.yaml"),
                                      "data": {"train": [str(manifest)]}, "export_weights": "middle"}))
    with pytest.raises(ConfigError, match="export_weights: must be one of best, last; got 'middle'"):
        load_config(recipe)
    from hydranet_ros.train.augment import Augment
    from hydranet_ros.train.trainer import check_augment

    assert check_augment(Augment(focus={"classes": ["pedestrian", "cyclist"]}), spec).focus.classes == (
        "pedestrian", "cyclist")
    with pytest.raises(ConfigError, match=r"focus.classes: \['person'\]"):
        check_augment(Augment(focus={"classes": ["person"]}), spec)


def test_a_resumed_log_drops_the_steps_after_the_checkpoint(tmp_path) -> None:
    """A run killed between checkpoints logged steps its resume will log again: they must not appear twice."""
    from hydranet_ros.train.trainer import CsvLog

    path = tmp_path / "train_log.csv"
    log = CsvLog(path, None)
    for step in range(1, 6):
        log.add({"step": step, "total": 1.0 / step})
    resumed = CsvLog(path, resume_step=3)  # the last checkpoint was at step 3
    resumed.add({"step": 4, "total": 0.2, "loss/depth": 0.1})  # a new column rewrites the header
    resumed.add({"step": 5, "total": 0.1, "loss/depth": 0.05})
    rows = list(csv.DictReader(path.open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert rows[3]["total"] == "0.2" and rows[4]["loss/depth"] == "0.05" and rows[0]["loss/depth"] == ""
