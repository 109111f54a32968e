"""Critical mixture ratio (CMR) of continual pretraining: how much of a new domain a run can take.

Continual pretraining on a domain D starts from a model of the general mix. The more of D a run mixes
in, the faster D is learned and the more the general domains are forgotten. The CMR at a token budget is
the largest share of D for which the general-domain loss stays within ``tolerance`` (relative) of the
starting model's. Found here on proxies:

1. a base model per seed, trained on the general mix (the natural mix of the other domains);
2. at each budget, one continual run per ratio in a grid, from that base, with ``ratio`` of D and the
   rest in the general mix's proportions; same seeds across ratios and budgets (paired);
3. the general loss is the general mix's weighted bits per byte on the fixed evaluation sets; the CMR
   is where the mean relative rise over seeds first crosses the tolerance, interpolated linearly
   between grid points (or "at least the largest ratio" / "below the smallest" when it never crosses);
   each ratio also says, by a paired test over the seeds, whether its general loss is significantly above
   or below the tolerated one, or not distinguishable from it;
4. across budgets, CMR = a * tokens^b by least squares in log-log space (the paper fits power laws in
   tokens), reported when two or more budgets cross inside the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.errors import ConfigError
from mixers.significance import paired_comparison
from mixers.strategies.base import Objective
from mixers.strategies.environment import RunRequest
from mixers.strategies.parallel import Runner, run_request
from mixers.strategies.weights import Weights, normalise

if TYPE_CHECKING:
    from mixers.strategies.environment import ProxyEnvironment

DEFAULT_RATIOS = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8)


@dataclass(frozen=True)
class CriticalRatioSearch:
    """What to search: the new domain, the allowed relative rise of the general loss, the budgets
    (proxy steps of the continual run), the ratio grid, the base model's steps and the paired seeds."""

    domain: str
    budgets: tuple[int, ...]
    tolerance: float = 0.01
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    base_steps: int = 200
    seeds: tuple[int, ...] = (0, 1)

    def __post_init__(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ConfigError(f"critical_ratio.tolerance must be in (0, 1), got {self.tolerance}")
        if not self.budgets or any(b <= 0 for b in self.budgets):
            raise ConfigError(f"critical_ratio.budgets: give positive proxy step counts, got {self.budgets}")
        if not self.ratios or any(not 0 < r < 1 for r in self.ratios):
            raise ConfigError(f"critical_ratio.ratios must lie in (0, 1), got {self.ratios}")
        if self.base_steps <= 0 or not self.seeds:
            raise ConfigError("critical_ratio needs base_steps > 0 and at least one seed")


def general_mix(env: ProxyEnvironment, domain: str) -> Weights:
    """The other domains in their natural proportions: what the base model knows and must keep."""
    if domain not in env.domains:
        raise ConfigError(f"critical_ratio.domain {domain!r} is not a training domain; have {env.domains}")
    others = {name: weight for name, weight in env.natural.items() if name != domain}
    if not others:
        raise ConfigError("critical_ratio needs at least one general domain beside the new one")
    return normalise(others)


def mixed(general: Weights, domain: str, ratio: float) -> Weights:
    return {**{name: (1 - ratio) * weight for name, weight in general.items()}, domain: ratio}


def crossing(ratios: list[float], rises: list[float], tolerance: float) -> dict[str, Any]:
    """Where the rise first exceeds the tolerance, interpolated between the two grid points around it."""
    for index, (ratio, rise) in enumerate(zip(ratios, rises, strict=True)):
        if rise > tolerance:
            if index == 0:
                return {"cmr": None, "bound": f"below {ratio}"}
            low, low_rise = ratios[index - 1], rises[index - 1]
            share = (tolerance - low_rise) / (rise - low_rise)
            return {"cmr": round(low + share * (ratio - low), 4), "bound": "inside"}
    return {"cmr": None, "bound": f"at least {ratios[-1]}"}


def power_law(tokens: list[int], cmrs: list[float]) -> dict[str, float] | None:
    """CMR = a * tokens^b fitted in log-log space; None with fewer than two points."""
    if len(tokens) < 2:
        return None
    slope, intercept = np.polyfit(np.log(tokens), np.log(cmrs), 1)
    return {"a": float(math.exp(intercept)), "b": float(slope)}


def find_critical_ratio(
    env: ProxyEnvironment, search: CriticalRatioSearch, runner: Runner | None = None
) -> dict[str, Any]:
    """The CMR at every budget and the fitted curve, with every run's figures for the report."""
    runner = runner or Runner()
    general = general_mix(env, search.domain)
    general_loss = Objective(general)
    ratios = sorted(search.ratios)
    bases = runner.map(
        run_request,
        env.spec,
        [
            RunRequest(steps=search.base_steps, seed=s, schedule=(general,), return_state=True)
            for s in search.seeds
        ],
    )
    base_loss = [general_loss.value(base.bpb) for base in bases]
    rows = []
    for budget in search.budgets:
        requests = [
            RunRequest(
                steps=budget,
                seed=seed,
                schedule=(mixed(general, search.domain, ratio),),
                init_state=base.state,
                initial_weights=general,
            )
            for ratio in ratios
            for seed, base in zip(search.seeds, bases, strict=True)
        ]
        results = iter(runner.map(run_request, env.spec, requests))
        rows.append(_budget_row(env, search, budget, ratios, base_loss, general_loss, results))
    inside = [row for row in rows if row["bound"] == "inside"]
    return {
        "domain": search.domain,
        "tolerance": search.tolerance,
        "general_mix": general,
        "base": {"steps": search.base_steps, "general_bpb": base_loss, "seeds": list(search.seeds)},
        "budgets": rows,
        "fit": power_law([row["tokens"] for row in inside], [row["cmr"] for row in inside]),
    }


def _budget_row(
    env: ProxyEnvironment,
    search: CriticalRatioSearch,
    budget: int,
    ratios: list[float],
    base_loss: list[float],
    general_loss: Objective,
    results: Any,
) -> dict[str, Any]:
    """One budget: per ratio, the mean relative rise of the general loss over the paired seeds."""
    runs, rises = [], []
    allowed = [base * (1 + search.tolerance) for base in base_loss]
    for ratio in ratios:
        seeds = [next(results) for _ in search.seeds]
        general = [general_loss.value(r.bpb) for r in seeds]
        rise = [loss / base - 1 for loss, base in zip(general, base_loss, strict=True)]
        rises.append(float(np.mean(rise)))
        names = (f"{ratio:g} {search.domain}", f"base +{search.tolerance:g}")
        runs.append(
            {
                "ratio": ratio,
                "general_rise": rise,
                "domain_bpb": [r.bpb[search.domain] for r in seeds],
                "versus_tolerance": paired_comparison(general, allowed, names),
            }
        )
    return {
        "steps": budget,
        "tokens": budget * env.config.tokens_per_step,
        **crossing(ratios, rises, search.tolerance),
        "runs": runs,
    }


def format_report(figures: dict[str, Any]) -> str:
    """One row per budget and ratio: the mean relative rise of the general loss and the paired verdict."""
    lines = [
        f"critical mixture ratio of {figures['domain']} (general loss may rise {figures['tolerance']:.1%})",
        f"{'steps':>6} {'tokens':>10} {'ratio':>6} {'general rise':>13} {'domain bpb':>11}  verdict",
    ]
    for row in figures["budgets"]:
        for run in row["runs"]:
            rise = sum(run["general_rise"]) / len(run["general_rise"])
            bpb = sum(run["domain_bpb"]) / len(run["domain_bpb"])
            verdict = run["versus_tolerance"]["verdict"]
            where = f"{row['steps']:>6} {row['tokens']:>10,} {run['ratio']:>6g}"
            lines.append(f"{where} {rise:>+13.4f} {bpb:>11.4f}  {verdict}")
        cmr = row["cmr"] if row["cmr"] is not None else row["bound"]
        lines.append(f"{'':>6} {'':>10} CMR: {cmr}")
    fit = figures["fit"]
    lines.append(
        f"fit: CMR = {fit['a']:.4g} * tokens^{fit['b']:.3f}" if fit else "fit: fewer than two crossings"
    )
    return "\n".join(lines)
