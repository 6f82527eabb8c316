"""Task weighting for the multi-task total loss, selectable by name (`build_weighting`), plus PCGrad.

Trainer protocol, for every strategy:

    total, weights = weighting.combine(losses)      # losses: {task: scalar tensor}; weights: floats for logging
    if isinstance(weighting, GradNormWeighting):
        weighting.gradnorm_step(losses, weight_optimizer)   # before backward: it needs the graph
    total.backward()            # or pcgrad({t: w_t * L_t}, shared_params, total=total) instead
    optimizer.step()
    ...
    weighting.epoch_end(mean_losses)                # once per epoch, mean unweighted loss per task

Learnable weightings are nn.Modules: `UncertaintyWeighting`'s parameters go into the model's optimiser (they are
trained by the total loss); `GradNormWeighting`'s go into their own optimiser, passed to `gradnorm_step` (the
total loss uses them detached).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class TaskWeighting(nn.Module):
    """Base: a weighted sum of per-task losses. `losses` may hold any subset of `tasks` (absent tasks add nothing)."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"need distinct, non-empty task names, got {list(tasks)}")
        self.tasks = list(tasks)

    def _index(self, losses: dict[str, Tensor]) -> list[int]:
        unknown = sorted(set(losses) - set(self.tasks))
        if unknown:
            raise KeyError(f"losses for unknown task(s) {unknown}; tasks: {self.tasks}")
        return [self.tasks.index(t) for t in losses]

    def task_weights(self) -> Tensor:
        """Current weight per task, [K], detached."""
        raise NotImplementedError

    def combine(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """(total loss, weight per task for logging)."""
        idx = self._index(losses)
        w = self.task_weights().clone()  # a copy: later in-place weight updates must not break this graph's backward
        total = sum((w[i] * loss for i, loss in zip(idx, losses.values(), strict=True)), torch.zeros(()))
        return total, self._report(w)

    def _report(self, w: Tensor) -> dict[str, float]:
        return dict(zip(self.tasks, w.detach().cpu().tolist(), strict=True))

    def epoch_end(self, mean_losses: dict[str, float]) -> None:  # noqa: ARG002 (hook for epoch-based strategies)
        """Called once per epoch with the mean unweighted loss per task. No-op unless the strategy needs it."""
        return None


class FixedWeighting(TaskWeighting):
    """Constant weights: total = alpha * L1 + beta * L2 + ... (the course's form)."""

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__(list(weights))
        self.register_buffer("weights", torch.tensor([float(weights[t]) for t in self.tasks]))

    def task_weights(self) -> Tensor:
        return self.weights


class UncertaintyWeighting(TaskWeighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla 2018), learnable s_i = log sigma_i^2.

    total = sum_i exp(-s_i) * L_i + s_i. The paper's regression form is 1/(2 sigma^2) L + log sigma
    = 1/2 (exp(-s) L + s); we drop the overall 1/2 (a constant factor, i.e. a learning-rate change) and use the
    same form for classification terms, as the authors' own code does. Optimum: s_i = log L_i, so the weight
    exp(-s_i) = 1 / L_i tends to equalise the tasks' contributions. s starts at 0 (weights 1).

    The parameters `log_vars` are trained by the total loss: give `weighting.parameters()` to the optimiser
    (usually without weight decay).
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def task_weights(self) -> Tensor:
        return torch.exp(-self.log_vars).detach()

    def combine(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        idx = self._index(losses)
        s = self.log_vars
        total = sum(
            (torch.exp(-s[i]) * loss + s[i] for i, loss in zip(idx, losses.values(), strict=True)), torch.zeros(())
        )
        return total, self._report(torch.exp(-s))


class DWAWeighting(TaskWeighting):
    """Dynamic Weight Average (Liu, Johns & Davison 2019).

    w_i(t) = K exp(r_i(t-1) / T) / sum_j exp(r_j(t-1) / T), r_i(t-1) = L_i(t-1) / L_i(t-2), from the epoch means
    given to `epoch_end`. A task whose loss falls more slowly gets more weight. Weights are 1 until two epochs have
    ended. The history is in buffers, so it survives a checkpoint.
    """

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        k = len(self.tasks)
        self.register_buffer("history", torch.ones(2, k))  # [L(t-2), L(t-1)]
        self.register_buffer("epochs", torch.zeros((), dtype=torch.long))
        self.register_buffer("weights", torch.ones(k))

    def task_weights(self) -> Tensor:
        return self.weights

    def epoch_end(self, mean_losses: dict[str, float]) -> None:
        missing = sorted(set(self.tasks) - set(mean_losses))
        if missing:
            raise KeyError(f"epoch_end needs every task's mean loss; missing {missing}")
        latest = torch.tensor([float(mean_losses[t]) for t in self.tasks], device=self.history.device)
        self.history.copy_(torch.stack([self.history[1], latest]))
        self.epochs += 1
        if int(self.epochs) >= 2:
            ratio = self.history[1] / self.history[0].clamp(min=1e-12)
            self.weights.copy_(len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0))


class GradNormWeighting(TaskWeighting):
    """GradNorm (Chen et al. 2018): learnable w_i that balance the tasks' gradient norms on a shared layer.

    combine() uses the current w (detached). Per training step, before `total.backward()`, call
    `gradnorm_step(losses, weight_optimizer)` with an optimiser over `weighting.parameters()` (not the model's):
      G_i = ||grad_W (w_i L_i)||_2 on `shared_parameter` W (the last shared layer's weight),
      r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0)), target_i = mean(G) * r_i^alpha (a constant),
      w <- step on sum_i |G_i - target_i|, then w clamped positive and renormalised to sum to K.
    L_i(0) is each task's loss at its first step with a gradient. A task whose loss has no gradient on W in this
    batch (no labels: the loss is a graph-carrying zero) sits the step out, so it is not mistaken for a lagging one.
    """

    def __init__(self, tasks: Sequence[str], shared_parameter: nn.Parameter, alpha: float = 1.5) -> None:
        super().__init__(tasks)
        self.shared_parameter = [shared_parameter]  # a list: not registered, so it stays out of this module's params
        self.alpha = alpha
        k = len(self.tasks)
        self.weights = nn.Parameter(torch.ones(k))
        self.register_buffer("initial_losses", torch.full((k,), float("nan")))

    def task_weights(self) -> Tensor:
        return self.weights.detach()

    def gradnorm_step(self, losses: dict[str, Tensor], optimizer: torch.optim.Optimizer) -> Tensor:
        """One GradNorm update of the weights; keeps the losses' graph for the main backward. Returns its loss."""
        idx = self._index(losses)
        shared = self.shared_parameter[0]
        norms, active = [], []
        for i, loss in zip(idx, losses.values(), strict=True):
            (grad,) = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
            norm = torch.zeros(()) if grad is None else grad.detach().norm()
            if float(norm) > 0:  # G_i = w_i * ||grad L_i||: w_i is a scalar, so no second-order graph is needed
                norms.append(norm.to(self.weights.device))
                active.append(i)
        if len(active) < 2:  # balancing needs at least two tasks in the batch
            return torch.zeros(())
        index = torch.tensor(active, device=self.weights.device)
        current = torch.stack([losses[self.tasks[i]].detach().float() for i in active]).to(self.weights.device)
        with torch.no_grad():
            unset = torch.isnan(self.initial_losses[index])
            self.initial_losses[index[unset]] = current[unset]
        ratio = current / self.initial_losses[index].clamp(min=1e-12)
        ratio = ratio / ratio.mean()
        g = self.weights[index] * torch.stack(norms)
        target = (g.mean() * ratio.pow(self.alpha)).detach()
        gradnorm_loss = (g - target).abs().sum()
        optimizer.zero_grad(set_to_none=True)
        (self.weights.grad,) = torch.autograd.grad(gradnorm_loss, self.weights)
        optimizer.step()
        with torch.no_grad():
            self.weights.clamp_(min=1e-4)
            self.weights.mul_(len(self.tasks) / self.weights.sum())
        return gradnorm_loss.detach()


def pcgrad(
    losses: dict[str, Tensor],
    params: Sequence[nn.Parameter],
    total: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> None:
    """PCGrad (Yu et al. 2020) in place of `total.backward()`.

    losses: the per-task terms as they enter the total (already weighted). `params`: the shared parameters.
    Each task's gradient g_i on `params` is projected, in random order, onto the normal plane of every other task's
    (original) gradient g_j it conflicts with (g_i . g_j < 0): g_i -= (g_i . g_j) / ||g_j||^2 g_j; the projected
    gradients are summed. Every other parameter (task heads, learnable weightings) gets its ordinary gradient from
    `total` (default: the sum of `losses`; pass the weighting's total to include e.g. uncertainty terms). Like
    backward(), gradients accumulate into `.grad`.
    """
    params = list(params)
    flat = []
    for loss in losses.values():
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        flat.append(
            torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads, strict=True)])
        )
    before = [None if p.grad is None else p.grad.clone() for p in params]
    if total is None:
        total = torch.stack(list(losses.values())).sum()
    total.backward()  # everything else's gradient; the shared params' are overwritten below

    g = torch.stack(flat)  # [K, P]
    projected = g.clone()
    k = len(flat)
    for i in range(k):
        for j in torch.randperm(k, generator=generator).tolist():
            if j == i:
                continue
            dot = projected[i] @ g[j]
            if dot < 0:
                projected[i] -= dot / g[j].dot(g[j]).clamp(min=1e-20) * g[j]
    merged = projected.sum(0)
    offset = 0
    for p, prev in zip(params, before, strict=True):
        n = p.numel()
        grad = merged[offset : offset + n].view_as(p)
        p.grad = grad.clone() if prev is None else prev + grad
        offset += n


WEIGHTINGS: dict[str, type[TaskWeighting]] = {
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "dwa": DWAWeighting,
    "gradnorm": GradNormWeighting,
}


def build_weighting(name: str, tasks: Sequence[str], **options: object) -> TaskWeighting:
    """The weighting named `name` for `tasks`. Options: fixed: weights={task: w} (default 1 each);
    dwa: temperature; gradnorm: shared_parameter (required), alpha. Unknown name or option -> ValueError."""
    cls = WEIGHTINGS.get(name)
    if cls is None:
        raise ValueError(f"unknown task weighting {name!r}; valid names: {', '.join(WEIGHTINGS)}")
    params = inspect.signature(cls.__init__).parameters
    valid = sorted(p for p in params if p not in ("self", "tasks"))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {name!r} weighting; valid options: {valid}")
    if cls is FixedWeighting:
        weights = dict(options.get("weights") or {})  # type: ignore[call-overload]
        extra = sorted(set(weights) - set(tasks))
        if extra:
            raise ValueError(f"fixed weights for unknown task(s) {extra}; tasks: {list(tasks)}")
        return FixedWeighting({t: float(weights.get(t, 1.0)) for t in tasks})
    return cls(tasks, **options)  # type: ignore[call-arg]
