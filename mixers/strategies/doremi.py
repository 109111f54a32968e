"""DoReMi (Xie et al., 2023): domain weights from Group DRO against a reference model.

1. Train a reference proxy on the reference mix (natural by default).
2. Train a second proxy from the same start while keeping domain weights ``alpha`` (uniform at first).
   At every step, on the same batch, compute each token's excess loss ``loss_proxy - loss_reference``,
   clip it at zero (a token the proxy already predicts better than the reference teaches nothing),
   average it per domain, and take an exponentiated-gradient step ``alpha <- alpha * exp(eta * excess)``,
   renormalised and smoothed with the uniform distribution (``(1 - c) alpha + c / k``) so no domain's
   weight collapses to zero. The proxy's update minimises the alpha-weighted per-domain loss.
3. The answer is alpha averaged over all steps (the iterates of a minimax game oscillate; their mean is
   the stable solution).

DoReMi is target-agnostic: it optimises the worst-case excess loss over the training domains and never
looks at the objective; its report says so. The proxy batches sample every domain equally by default
(``sample="uniform"``) so each step measures every domain's excess loss; the paper's own sampling
distribution (the reference mix) is ``sample="reference"``.

Equal compute: the two proxies together spend the budget, ``runs * steps // 2`` updates each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from curate.errors import ConfigError
from mixers.strategies.base import MixProblem, MixResult, Strategy
from mixers.strategies.baselines import uniform_weights
from mixers.strategies.environment import RunRequest
from mixers.strategies.parallel import Runner
from mixers.strategies.weights import as_vector, as_weights, normalise

if TYPE_CHECKING:
    from mixers.strategies.environment import ProxyEnvironment


def doremi_update(alpha: np.ndarray, excess: np.ndarray, eta: float, smoothing: float) -> np.ndarray:
    """One exponentiated-gradient step on the per-domain excess loss, then smoothing with uniform.

    In log space, so a large ``eta * excess`` cannot overflow.
    """
    logits = np.log(np.maximum(alpha, 1e-300)) + eta * np.asarray(excess, dtype=np.float64)
    stepped = np.exp(logits - logits.max())
    stepped /= stepped.sum()
    return (1.0 - smoothing) * stepped + smoothing / len(alpha)


def domain_excess(
    proxy: torch.Tensor, reference: torch.Tensor, rows: np.ndarray, n_domains: int
) -> np.ndarray:
    """Per-domain mean of the per-token excess loss clipped at zero; 0 for a domain absent from the batch."""
    clipped = (proxy - reference).clamp(min=0).double().mean(dim=1).numpy()
    excess = np.zeros(n_domains)
    for domain in range(n_domains):
        chosen = rows == domain
        if chosen.any():
            excess[domain] = clipped[chosen].mean()
    return excess


def row_weights_for(alpha: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """Row weights making the batch loss ``sum_d alpha_d * mean loss of domain d`` (present domains)."""
    counts = np.bincount(rows, minlength=len(alpha))
    return torch.from_numpy(alpha[rows] / counts[rows]).float()


@dataclass(frozen=True)
class DoReMiRequest:
    steps: int
    seed: int
    eta: float
    smoothing: float
    reference: dict[str, float]
    sample: dict[str, float]
    init_state: Any = field(default=None, compare=False, repr=False)


class _Reweighter:
    """The per-step callback of the proxy run: reference losses, excess, alpha step, row weights."""

    def __init__(self, reference_model: torch.nn.Module, proxy: Any, request: DoReMiRequest, domains: int):
        self.reference, self.proxy, self.request = reference_model, proxy, request
        self.alpha = np.full(domains, 1.0 / domains)
        self.history: list[np.ndarray] = []
        self.excess: list[np.ndarray] = []

    def __call__(self, batch: torch.Tensor, losses: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            reference = self.proxy.token_losses(self.reference, batch)
        excess = domain_excess(losses, reference, rows, len(self.alpha))
        self.alpha = doremi_update(self.alpha, excess, self.request.eta, self.request.smoothing)
        self.history.append(self.alpha.copy())
        self.excess.append(excess)
        return row_weights_for(self.alpha, rows)


def doremi_job(env: ProxyEnvironment, request: DoReMiRequest) -> dict[str, Any]:
    """Reference run, then the reweighted proxy run; returns averaged weights and the whole trajectory."""
    reference = env.run(
        RunRequest(
            steps=request.steps,
            seed=request.seed,
            schedule=(request.reference,),
            init_state=request.init_state,
            return_state=True,
        )
    )
    reference_run = env.new_run(request.seed, request.steps, reference.state)
    reference_run.model.eval()
    proxy = env.new_run(request.seed, request.steps, request.init_state)
    reweighter = _Reweighter(reference_run.model, proxy, request, len(env.domains))
    sample = as_vector(request.sample, env.domains)
    for _ in range(request.steps):
        proxy.update(sample, reweighter)
    history = np.array(reweighter.history)
    return {
        "weights": as_weights(history.mean(axis=0), env.domains),
        "alpha": history.tolist(),
        "excess": np.array(reweighter.excess).tolist(),
        "reference_bpb": reference.bpb,
        "proxy_bpb": env.evaluate(proxy.model, proxy.recipe),
    }


class DoReMi(Strategy):
    """Group-DRO domain reweighting against a reference proxy; the mean alpha over the run."""

    name = "doremi"

    def __init__(
        self,
        eta: float = 1.0,
        smoothing: float = 1e-3,
        reference: Mapping[str, float] | str = "natural",
        sample: str = "uniform",
    ) -> None:
        if eta <= 0 or not 0 <= smoothing <= 1:
            raise ConfigError(f"doremi needs eta > 0 and 0 <= smoothing <= 1, got {eta}, {smoothing}")
        if sample not in ("uniform", "reference"):
            raise ConfigError(f"doremi sample must be uniform or reference, got {sample!r}")
        self.eta, self.smoothing, self.reference, self.sample = eta, smoothing, reference, sample

    def reference_weights(self, env: ProxyEnvironment) -> dict[str, float]:
        if self.reference == "natural":
            return dict(env.natural)
        if self.reference == "uniform":
            return uniform_weights(env.domains)
        if isinstance(self.reference, str):
            raise ConfigError(f"doremi reference must be natural, uniform or weights, got {self.reference!r}")
        return normalise(self.reference, env.domains)

    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        steps = problem.budget.total_steps // 2
        if steps < 2:
            raise ConfigError(
                f"doremi needs a budget of at least 4 proxy steps, got {problem.budget.total_steps}"
            )
        reference = self.reference_weights(env)
        request = DoReMiRequest(
            steps=steps,
            seed=problem.seed,
            eta=self.eta,
            smoothing=self.smoothing,
            reference=reference,
            sample=reference if self.sample == "reference" else uniform_weights(env.domains),
            init_state=problem.init_state,
        )
        [outcome] = (runner or Runner()).map(doremi_job, env.spec, [request])
        weights = outcome["weights"]
        report = {
            "params": {**self.params(), "reference": reference},
            "note": "DoReMi minimises the worst-case excess loss over the training domains, not the target",
            "steps_per_proxy": steps,
            **outcome,
        }
        return MixResult(self.name, weights, [dict(weights)] * problem.stages, report, 2, 2 * steps)
