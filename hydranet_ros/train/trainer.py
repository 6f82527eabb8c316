"""The training loop: manifests + a spec + a recipe -> checkpoints, logs, plots and (at the end) the node's model.

One step: a batch drawn from the manifests by their weights, one forward pass, one loss per task over the images
labelled for it (the others give exactly zero gradient, see `losses`), the configured weighting (and optionally
PCGrad) into one update. Staged freezing switches parts off until a step (a frozen part's BatchNorm statistics
stay fixed too). Under `torchrun` the model runs as DistributedDataParallel and each rank draws its own batches.

Files in `out/`: last.safetensors (+ card) and last_state.pt (optimiser, scaler, weighting, step: for --resume),
best.safetensors (+ card) by validation score, train_log.csv, val_log.csv, plots.png, and model.onnx + model.yaml
(the exported node model, with the recipe, data and validation metrics in its card).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from hydranet_ros.core.contract import write_card
from hydranet_ros.core.progress import show_progress
from hydranet_ros.model.export import load_weights
from hydranet_ros.model.hydra import FusedHydraNet, HydraNet
from hydranet_ros.model.spec import ModelSpec, load_spec
from hydranet_ros.train.augment import Augment
from hydranet_ros.train.balancing import GradNormWeighting, TaskWeighting, build_weighting, pcgrad
from hydranet_ros.train.config import ConfigError, TrainConfig
from hydranet_ros.train.data import Batch, MultiTaskDataset, collate, source_weights
from hydranet_ros.train.evaluate import evaluate, torch_predictor
from hydranet_ros.train.kinds import TRAINING, flat_metrics
from hydranet_ros.train.manifest import HELD_OUT_KEY, Sample, read_manifest
from hydranet_ros.train.plots import panel, save_figure, smooth

HIGHER_IS_BETTER = ("miou", "delta1", "map50", "recall")


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def validation_score(flat: dict[str, float]) -> float:
    """One number to pick the best checkpoint: the mean of the headline metrics where higher is better."""
    vals = [v for k, v in flat.items() if k.rsplit("/", 1)[-1] in HIGHER_IS_BETTER and math.isfinite(v)]
    return float(np.mean(vals)) if vals else -math.inf


def check_augment(augment: Augment, spec: ModelSpec) -> Augment:
    """ConfigError where the augment names classes the model's detection heads do not have."""
    if augment.focus is not None:
        known = {c for h in spec.heads if h.type == "detection" for c in h.classes}
        if set(augment.focus.classes) - known:
            raise ConfigError(f"data.augment.focus.classes: {sorted(set(augment.focus.classes) - known)} are not "
                              f"classes of this model's detection heads ({sorted(known)})")
    return augment


def refuse_held_out(train: list[Sample], held_out: list[Sample]) -> None:
    """Evaluation frames are never trained on, by any path: ConfigError if a training sample is marked held out
    (by `hydranet import kitti` from split.json, or `hydranet manifest split`), or if its image's bytes are those
    of an image in the recipe's `data.held_out` manifests (which catches the same file imported another way)."""
    marked = [s for s in train if s.extra.get(HELD_OUT_KEY)]
    if marked:
        raise ConfigError(f"{len(marked)} training image(s) are held out for evaluation, e.g. {marked[0].image} "
                          f"({HELD_OUT_KEY}: {marked[0].extra[HELD_OUT_KEY]}): take them out of data.train")
    if not held_out:
        return

    def digest(path: Path) -> str:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    reserved = {digest(s.image): s.image for s in held_out}
    for s in train:
        twin = reserved.get(digest(s.image))
        if twin is not None:
            raise ConfigError(f"training image {s.image} is the held-out image {twin} (data.held_out)")


class TaskLosses:
    """Each head's loss with the recipe's options, on the raw outputs of one forward pass."""

    def __init__(self, spec: ModelSpec, options: dict[str, dict[str, Any]]) -> None:
        self.spec = spec
        unknown = sorted(set(options) - {h.name for h in spec.heads})
        if unknown:
            raise ConfigError(f"losses: no task {unknown} in the model (tasks: {[h.name for h in spec.heads]})")
        self.options: dict[str, dict[str, Any]] = {}
        for h in spec.heads:
            kind = TRAINING[h.type]
            try:
                self.options[h.name] = kind.check_loss_options(h, dict(options.get(h.name, {})))
            except ValueError as exc:  # "option: why" names the key losses.<head>.<option>
                key = str(exc).split(":", 1)[0]
                raise ConfigError(f"losses.{h.name}{'.' if key in kind.loss_options else ': '}{exc}") from None

    def __call__(self, raw: dict[str, Tensor], batch: Batch, device: torch.device) -> dict[str, Tensor]:
        hw = (int(batch.image.shape[1]), int(batch.image.shape[2]))
        return {h.name: TRAINING[h.type].loss(h, raw[h.name], batch.tasks[h.name], self.options[h.name], hw, device)
                for h in self.spec.heads}


def _parts(net: HydraNet) -> dict[str, nn.Module]:
    return {"backbone": net.backbone, "decoder": net.decoder, "heads": net.heads}


def apply_freeze(net: HydraNet, frozen: set[str]) -> None:
    """requires_grad off for frozen parts, and their BatchNorm in eval mode (frozen statistics, not just weights)."""
    for name, part in _parts(net).items():
        for p in part.parameters():
            p.requires_grad_(name not in frozen)
        if name in frozen:
            for m in part.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


class CsvLog:
    """Append rows to a CSV whose columns may grow (a task appears later): rewrites the header when they do."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        """`resume_step`: continue the log of a run resumed at that step, dropping the rows after it (logged
        between the last checkpoint and the run's end: the resumed run logs those steps again)."""
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and path.is_file():
            with path.open() as f:
                self.rows = [dict(r) for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.columns: list[str] = list(self.rows[0]) if self.rows else []
        if resume_step is not None and self.rows:
            self._rewrite()

    def _rewrite(self) -> None:
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            w.writerows(self.rows)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new or len(self.rows) == 1:
            self.columns += new
            self._rewrite()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, self.columns).writerow(row)

    def series(self, column: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for r in self.rows:
            v = r.get(column)
            if v not in (None, ""):
                xs.append(float(r["step"]))
                ys.append(float(v))
        return xs, ys


class Trainer:
    def __init__(self, cfg: TrainConfig, device: str = "auto", progress: bool = True,
                 log: Callable[[str], None] = print, spec: ModelSpec | None = None) -> None:
        """`spec` overrides the recipe's model spec (task-affinity trains subsets of its heads)."""
        self.cfg = cfg
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.log = log if _is_main() else (lambda _m: None)  # after init: only rank 0 speaks
        self.progress = progress and _is_main()
        rank = dist.get_rank() if self.distributed else 0
        if device == "auto":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if self.distributed and (cfg.pcgrad or cfg.weighting["name"] == "gradnorm"):
            raise ConfigError("pcgrad and gradnorm compute per-task gradients outside DDP's all-reduce: "
                              "run them on one process")
        self.amp = cfg.amp == "on" or (cfg.amp == "auto" and self.device.type == "cuda" and not cfg.pcgrad)
        if self.amp and self.device.type != "cuda":
            raise ConfigError("amp: on needs a CUDA device (on CPU, fp16 autocast is slower, not faster)")
        if self.amp and cfg.pcgrad:
            raise ConfigError("pcgrad projects unscaled per-task gradients: use it with amp: off")
        torch.manual_seed(cfg.seed + rank)
        random.seed(cfg.seed + rank)

        self.spec = spec or load_spec(cfg.model)
        self.net = HydraNet(self.spec, backbone_weights=False if cfg.init else None).to(self.device)
        if cfg.init:
            load_weights(self.net, cfg.init)
        self.tasks = [h.name for h in self.spec.heads]
        self.losses = TaskLosses(self.spec, cfg.losses)

        groups = [(read_manifest(m), w) for m, w in cfg.train]
        self.train_sizes = [len(g) for g, _ in groups]
        samples = [s for g, _ in groups for s in g]
        refuse_held_out(samples, [s for m in cfg.held_out for s in read_manifest(m)])
        augment = check_augment(Augment.from_dict(cfg.augment), self.spec)
        self.train_set = MultiTaskDataset(samples, self.spec, augment=augment, crop=cfg.crop, seed=cfg.seed + rank)
        self.sample_weights = source_weights(groups)
        val_samples = [s for m in cfg.val for s in read_manifest(m)]
        self.val_set = MultiTaskDataset(val_samples, self.spec) if val_samples else None
        for name, ds in (("train", self.train_set), ("val", self.val_set)):
            if ds is not None and ds.unknown_tasks:
                self.log(f"note: {name} labels for task(s) this model has not are ignored: {ds.unknown_tasks}")
        counts = self.train_set.label_counts()
        unlabelled = [t for t, n in counts.items() if n == 0]
        if unlabelled:
            raise ConfigError(f"no training image carries a label for task(s) {unlabelled}: they would stay untrained")
        self.log(f"train: {len(samples)} images from {len(groups)} manifest(s); labels per task {counts}")
        if self.val_set:
            self.log(f"val: {len(val_samples)} images; labels per task {self.val_set.label_counts()}")

        w_opts = {k: v for k, v in cfg.weighting.items() if k != "name"}
        if cfg.weighting["name"] == "gradnorm":
            w_opts["shared_parameter"] = self._last_shared_parameter()
        if cfg.weighting["name"] == "fixed" and "weights" not in w_opts:
            w_opts["weights"] = {h.name: h.loss_weight for h in self.spec.heads}  # the spec's loss_weight
        self.weighting: TaskWeighting = build_weighting(cfg.weighting["name"], self.tasks, **w_opts).to(self.device)
        backbone = list(self.net.backbone.parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.net.parameters() if id(p) not in ids]
        param_groups = [{"params": backbone, "lr": cfg.backbone_lr, "base_lr": cfg.backbone_lr},
                        {"params": rest, "lr": cfg.lr, "base_lr": cfg.lr}]
        self.weight_opt = None
        if isinstance(self.weighting, GradNormWeighting):
            self.weight_opt = torch.optim.Adam(self.weighting.parameters(), lr=0.025)
        elif list(self.weighting.parameters()):
            param_groups.append({"params": list(self.weighting.parameters()), "lr": cfg.lr, "base_lr": cfg.lr,
                                 "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.model: nn.Module = self.net
        if self.distributed:
            self.model = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.step = 0
        self.best = -math.inf
        self.epoch_steps = max(1, min(len(samples) // cfg.batch_size, 200))  # DWA's "epoch"
        self.out = cfg.out
        self.started = time.time()
        self.elapsed_before = 0.0

    def _last_shared_parameter(self) -> nn.Parameter:
        """GradNorm's W: the last shared layer's weight (the decoder's final projection)."""
        shared = [p for p in self.net.decoder.parameters() if p.dim() > 1]
        return shared[-1]

    # --- state -------------------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {"step": self.step, "best": self.best, "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict(), "weighting": self.weighting.state_dict(),
                "weight_opt": self.weight_opt.state_dict() if self.weight_opt else {},
                "elapsed_s": self.elapsed_before + time.time() - self.started}

    def save(self, name: str, extra: dict[str, Any] | None = None) -> Path:
        path = self.out / f"{name}.safetensors"
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(path))
        write_card(path, self.spec.to_dict(), {"training": {"step": self.step, **(extra or {})}})
        return path

    def save_resume_state(self) -> None:
        self.save("last")
        # Plain tensors, numbers and lists only: loadable with torch.load(weights_only=True), nothing unpickled.
        torch.save(self._state(), self.out / "last_state.pt")

    def resume(self) -> None:
        state_file = self.out / "last_state.pt"
        if not state_file.is_file():
            raise ConfigError(f"--resume: no {state_file} (start without --resume, or point --out at the run)")
        load_weights(self.net, self.out / "last.safetensors")
        state = torch.load(state_file, map_location=self.device, weights_only=True)
        self.opt.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.weighting.load_state_dict(state["weighting"])
        if self.weight_opt and state["weight_opt"]:
            self.weight_opt.load_state_dict(state["weight_opt"])
        self.step, self.best = int(state["step"]), float(state["best"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.log(f"resumed at step {self.step} from {state_file}")

    # --- loop --------------------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[dict[str, Any]]:
        while True:  # a fresh sampler per pass; the seed follows the step, so a resumed run draws new batches
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
            n = (self.cfg.steps - self.step) * self.cfg.batch_size
            sampler = WeightedRandomSampler(self.sample_weights, num_samples=max(n, self.cfg.batch_size),
                                            replacement=True, generator=g)
            loader = DataLoader(self.train_set, batch_size=self.cfg.batch_size, sampler=sampler, drop_last=True,
                                num_workers=self.cfg.workers, collate_fn=collate,
                                persistent_workers=False, pin_memory=self.device.type == "cuda")
            yield from loader

    def train_step(self, batch: Batch) -> tuple[dict[str, float], dict[str, float], float]:
        cfg = self.cfg
        frozen = cfg.frozen_parts(self.step)
        self.model.train()
        apply_freeze(self.net, frozen)
        for group in self.opt.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(self.step, cfg.steps, cfg.warmup_steps)
        images = batch.image.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            raw = self.model(self.net.normalise(images))
        losses = self.losses({k: v.float() for k, v in raw.items()}, batch, self.device)
        total, weights = self.weighting.combine(losses)
        self.opt.zero_grad(set_to_none=True)
        if self.weight_opt is not None:
            self.weighting.gradnorm_step(losses, self.weight_opt)
        if cfg.pcgrad:
            shared = [p for p in list(self.net.backbone.parameters()) + list(self.net.decoder.parameters())
                      if p.requires_grad]
            w = self.weighting.task_weights().to(self.device)
            pcgrad({t: w[self.tasks.index(t)] * loss for t, loss in losses.items()}, shared, total=total)
        else:
            self.scaler.scale(total).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], 10.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        return {t: float(v.detach()) for t, v in losses.items()}, weights, float(total.detach())

    def validate(self) -> dict[str, Any]:
        if self.val_set is None:
            return {}
        fused = FusedHydraNet(self.net)
        results = evaluate(torch_predictor(fused, self.device), self.val_set, batch_size=self.cfg.batch_size,
                           workers=self.cfg.workers, progress=self.progress)
        self.net.train()
        return results

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(json.dumps(cfg.raw, indent=1, default=str))
        resume_step = self.step if self.step > 0 else None
        train_log = CsvLog(self.out / "train_log.csv", resume_step)
        val_log = CsvLog(self.out / "val_log.csv", resume_step)
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional: only when tensorboard is installed

            tb = SummaryWriter(str(self.out / "tensorboard")) if _is_main() else None
        except ImportError:
            tb = None
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        epoch_sums: dict[str, list[float]] = defaultdict(list)
        bar = show_progress(total=cfg.steps, initial=self.step, desc="train", unit="step", enabled=self.progress,
                            dynamic_ncols=True)
        last_val: dict[str, Any] = {}
        t_last = time.time()
        batches = self._batches()
        while self.step < cfg.steps:
            batch = next(batches)
            losses, weights, total = self.train_step(batch)
            self.step += 1
            for t, v in losses.items():
                if bool(batch.tasks[t].present.any()):  # the mean over batches that had this task
                    sums[t] += v
                    counts[t] += 1
                    epoch_sums[t].append(v)
            sums["total"] += total
            counts["total"] += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                now = time.time()
                row: dict[str, Any] = {"step": self.step, "lr": self.opt.param_groups[1]["lr"],
                                       "sec_per_step": round((now - t_last) / cfg.log_every, 4),
                                       "elapsed_s": round(self.elapsed_before + now - self.started, 1),
                                       "total": round(sums["total"] / max(1, counts["total"]), 5)}
                t_last = now
                for t in self.tasks:
                    row[f"loss/{t}"] = round(sums[t] / counts[t], 5) if counts[t] else ""
                    row[f"weight/{t}"] = round(weights.get(t, float("nan")), 5)
                if _is_main():
                    train_log.add(row)
                    if tb:
                        for k, v in row.items():
                            if k != "step" and v != "":
                                tb.add_scalar(k, float(v), self.step)
                bar.set_postfix(loss=row["total"], **{t[:6]: row[f"loss/{t}"] for t in self.tasks if counts[t]})
                sums.clear()
                counts.clear()
            if self.step % self.epoch_steps == 0 and all(epoch_sums.get(t) for t in self.tasks):
                # An "epoch" ends once every task has been seen (DWA compares each task's epoch means).
                self.weighting.epoch_end({t: float(np.mean(epoch_sums[t])) for t in self.tasks})
                epoch_sums.clear()
            if _is_main() and self.val_set is not None and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                last_val = self.validate()
                flat = flat_metrics(last_val)
                val_log.add({"step": self.step, **{k: round(v, 5) for k, v in flat.items()}})
                if tb:
                    for k, v in flat.items():
                        tb.add_scalar(f"val/{k}", v, self.step)
                score = validation_score(flat)
                if score > self.best:
                    self.best = score
                    self.save("best", {"validation": flat})
                self.log("\n" + f"step {self.step}: " + ", ".join(f"{k} {v:.3f}" for k, v in flat.items()))
            if _is_main() and (self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps):
                self.save_resume_state()
                self.plot(train_log, val_log)
        bar.close()
        if tb:
            tb.close()
        summary = {"steps": self.step, "elapsed_s": round(self.elapsed_before + time.time() - self.started, 1),
                   "validation": last_val}
        if _is_main():
            if not (self.out / "best.safetensors").is_file():
                self.save("best")  # no validation set: the last weights are the result
            (self.out / "summary.json").write_text(json.dumps(json_safe(summary), indent=1))
        return summary

    @property
    def is_main(self) -> bool:
        return _is_main()

    def export(self, out: Path | None = None, extra_provenance: dict[str, Any] | None = None) -> Path:
        """best.safetensors (or last, as the recipe's export_weights says) -> the node's model (ONNX + card with
        the recipe, the data and validation metrics)."""
        from hydranet_ros.model.export import export_onnx

        best = self.out / f"{self.cfg.export_weights}.safetensors"
        summary_file = self.out / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
        provenance = {
            "training": {
                "recipe": json_safe(self.cfg.raw),
                "steps": self.step,
                "train_time_min": round(summary.get("elapsed_s", 0.0) / 60, 1),
                "device": str(self.device) + (f" ({torch.cuda.get_device_name(self.device)})"
                                              if self.device.type == "cuda" else ""),
                "data": {"train": [{"manifest": str(m), "weight": w, "images": n}
                                   for (m, w), n in zip(self.cfg.train, self.train_sizes, strict=True)],
                         "val": [str(m) for m in self.cfg.val],
                         "labels_per_task": self.train_set.label_counts()},
            },
            **json_safe(self.cfg.card),
            **(extra_provenance or {}),
        }
        metrics = {"validation": json_safe(summary.get("validation") or {})}
        return export_onnx(self.spec, out or self.cfg.export_path or self.out / "model.onnx", weights=best,
                           provenance=provenance,
                           metrics=metrics)

    def plot(self, train_log: CsvLog, val_log: CsvLog) -> Path:
        window = max(1, 50 // self.cfg.log_every)
        losses = {t: (x, smooth(y, window)) for t in self.tasks for x, y in [train_log.series(f"loss/{t}")]}
        weights = {t: train_log.series(f"weight/{t}") for t in self.tasks}
        metric_cols = [c for c in val_log.columns if c != "step"]
        panels = [panel("loss per task (moving mean, log scale)", losses, log_y=True),
                  panel(f"task weights ({self.cfg.weighting['name']})", weights)]
        if metric_cols:
            panels.append(panel("validation", {c: val_log.series(c) for c in metric_cols}))
        return save_figure(self.out / "plots.png", panels)


def json_safe(v: Any) -> Any:
    """Metrics hold NaN for undefined values; JSON has no NaN, so they become null."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)
