"""Task affinity in small (Standley et al. 2020, "Which tasks should be learned together?").

Each task is trained alone, and each pair together, from the same initial weights under the same budget (steps,
batch, data); every network is then scored on the same validation frames. The relative performance of task i when
trained with task j is

    gain[i][j] = (m_ij - m_i) / |m_i|          for a metric where higher is better (mIoU, δ<1.25, mAP)
               = (m_i - m_ij) / |m_i|          for one where lower is better (AbsRel)

where m_i is task i trained alone and m_ij is task i trained beside j. Positive: j helps i share a backbone.
With a small budget the numbers are noisy (Standley et al. average runs); the table is for deciding which heads
to try together, not a verdict.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from hydranet_ros.model.spec import ModelSpec, load_spec
from hydranet_ros.train.config import TrainConfig
from hydranet_ros.train.kinds import TRAINING, flat_metrics


def primary_metric(spec: ModelSpec, task: str, flat: dict[str, float]) -> float:
    name, _ = TRAINING[spec.head(task).type].primary
    return float(flat.get(f"{task}/{name}", math.nan))


def gain(spec: ModelSpec, task: str, alone: float, together: float) -> float:
    _, higher = TRAINING[spec.head(task).type].primary
    if not (math.isfinite(alone) and math.isfinite(together)) or alone == 0:
        return math.nan
    return ((together - alone) if higher else (alone - together)) / abs(alone)


def subset_spec(spec: ModelSpec, tasks: tuple[str, ...]) -> ModelSpec:
    """The same network with only `tasks`' heads."""
    return replace(spec, name=f"{spec.name}-{'+'.join(tasks)}", heads=tuple(h for h in spec.heads if h.name in tasks))


def run_affinity(cfg: TrainConfig, tasks: list[str], steps: int, out: Path,
                 train_fn: Callable[[TrainConfig, ModelSpec], dict[str, float]] | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train every single task and every pair; return {"runs": {combo: flat metrics}, "metric", "gain"}.

    `train_fn(cfg, spec)` trains one combination and returns its validation metrics (default: `Trainer`)."""
    spec = load_spec(cfg.model)
    unknown = sorted(set(tasks) - {h.name for h in spec.heads})
    if unknown or len(tasks) < 2:
        raise ValueError(f"task-affinity needs >= 2 tasks of the model; unknown {unknown}, "
                         f"tasks: {[h.name for h in spec.heads]}")
    if not cfg.val:
        raise ValueError("task-affinity compares validation metrics: the recipe needs data.val manifests")
    train_fn = train_fn or _train_with_trainer
    combos = [(t,) for t in tasks] + list(itertools.combinations(tasks, 2))
    runs: dict[str, dict[str, float]] = {}
    for n, combo in enumerate(combos, 1):
        key = "+".join(combo)
        log(f"[{n}/{len(combos)}] training {key} for {steps} steps")
        c = copy.copy(cfg)
        c.steps, c.out, c.export = steps, out / key, False
        c.eval_every = c.checkpoint_every = steps
        c.losses = {t: o for t, o in cfg.losses.items() if t in combo}
        c.freeze = [s for s in cfg.freeze if s["until"] < steps]
        runs[key] = train_fn(c, subset_spec(spec, combo))
    metric = {t: primary_metric(spec, t, runs[t]) for t in tasks}
    table: dict[str, dict[str, float]] = {}
    for i in tasks:
        table[i] = {}
        for j in tasks:
            if i != j:
                key = "+".join(sorted((i, j), key=tasks.index))
                table[i][j] = gain(spec, i, metric[i], primary_metric(spec, i, runs[key]))
    return {"tasks": tasks, "steps": steps, "metric": {t: TRAINING[spec.head(t).type].primary[0] for t in tasks},
            "alone": metric, "runs": runs, "gain": table}


def _train_with_trainer(cfg: TrainConfig, spec: ModelSpec) -> dict[str, float]:
    from hydranet_ros.train.trainer import Trainer

    trainer = Trainer(cfg, progress=True, spec=spec)
    summary = trainer.fit()
    return flat_metrics(summary["validation"])


def markdown(report: dict[str, Any]) -> str:
    """Rows: the task measured; columns: the task it was trained with; cells: relative gain in percent."""
    tasks = report["tasks"]
    head = "| task (metric, alone) | " + " | ".join(f"with {t}" for t in tasks) + " |"
    lines = [head, "|" + "---|" * (len(tasks) + 1)]
    for i in tasks:
        cells = []
        for j in tasks:
            v = report["gain"][i].get(j)
            cells.append("–" if v is None or not math.isfinite(v) else f"{100 * v:+.1f} %")
        alone = report["alone"][i]
        lines.append(f"| {i} ({report['metric'][i]} {alone:.3f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)
