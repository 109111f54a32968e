"""RegMix (Liu et al., 2024): mixture search as regression over many tiny proxy runs.

1. Sample K mixtures from a Dirichlet around the natural distribution (its concentration scaled by a
   log-uniform factor per sample, so some mixtures stay near natural and some are extreme).
2. Train one tiny proxy per mixture (the same seed for all: common random numbers, so the regression
   sees the mixture's effect rather than initialisation noise) and score the objective on each.
3. Fit regressions weights -> objective; the candidates are Scheffé mixture polynomials (linear, and
   quadratic with pairwise blending terms: the standard models for mixture experiments, where weights
   sum to one and an intercept is redundant) and LightGBM when installed. Each is scored by Spearman
   rank correlation on held-out proxy runs (k-fold, so every run is held out once), since only the
   ranking matters for the search; the best is refitted on all runs.
4. Predict the objective of many simulated mixtures from the same prior and return the mean of the
   top-k: averaging is robust to a single over-optimistic prediction. By default only simulated
   mixtures near some proxy run compete (``trust_region``, see :func:`search_top_k`): with the tens of
   runs a CPU affords, rather than the paper's hundreds, the unconstrained search lands on whatever
   vertex the fit extrapolates to.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from curate.errors import ConfigError
from mixers.strategies.base import MixProblem, MixResult, Strategy
from mixers.strategies.environment import RunRequest
from mixers.strategies.parallel import Runner, run_request
from mixers.strategies.weights import as_vector, as_weights

if TYPE_CHECKING:
    from mixers.strategies.environment import ProxyEnvironment

MODELS = ("linear", "quadratic", "lightgbm")


def lightgbm_available() -> bool:
    return importlib.util.find_spec("lightgbm") is not None


def dirichlet_mixtures(
    center: np.ndarray,
    count: int,
    rng: np.random.Generator,
    scales: tuple[float, float] = (0.3, 5.0),
    floor: float = 0.05,
) -> np.ndarray:
    """(count, D) mixtures from Dirichlet(s * D * center), s log-uniform in ``scales`` per sample.

    The concentration is floored so a tiny domain still gets explored; gamma draws normalised per row
    are a Dirichlet with a different concentration per row (numpy's own sampler takes one).
    """
    dims = len(center)
    factor = np.exp(rng.uniform(math.log(scales[0]), math.log(scales[1]), size=count))
    alpha = np.maximum(factor[:, None] * dims * np.asarray(center)[None, :], floor)
    draws = rng.gamma(alpha)
    sums = draws.sum(axis=1, keepdims=True)
    empty = sums[:, 0] <= 0
    draws[empty], sums[empty] = 1.0, dims  # all-underflow rows (never in practice) become uniform
    return draws / sums


class Regressor(Protocol):
    def fit(self, x: np.ndarray, y: np.ndarray) -> Regressor: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class ScheffeRegression:
    """Scheffé polynomial y = sum_i b_i w_i (+ sum_{i<j} b_ij w_i w_j), ridge-regularised.

    The ridge keeps a quadratic fit defined when there are fewer runs than terms.
    """

    degree: int = 1
    ridge: float = 1e-4
    coef: np.ndarray | None = None

    def features(self, x: np.ndarray) -> np.ndarray:
        if self.degree == 1:
            return x
        rows, cols = np.triu_indices(x.shape[1], k=1)
        return np.hstack([x, x[:, rows] * x[:, cols]])

    def fit(self, x: np.ndarray, y: np.ndarray) -> ScheffeRegression:
        feats = self.features(x)
        gram = feats.T @ feats + self.ridge * np.eye(feats.shape[1])
        self.coef = np.linalg.solve(gram, feats.T @ y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("fit the regression before predicting")
        return self.features(x) @ self.coef


@dataclass
class LightGBMRegression:
    """Gradient-boosted trees (RegMix's best model): settings for tens of samples, one thread, seeded."""

    seed: int = 0
    rounds: int = 300
    booster: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> LightGBMRegression:
        import lightgbm

        params = {
            "objective": "regression",
            "learning_rate": 0.05,
            "num_leaves": 7,
            "min_data_in_leaf": 2,
            "min_data_in_bin": 1,
            "lambda_l2": 1e-3,
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            "seed": self.seed,
            "verbose": -1,
        }
        data = lightgbm.Dataset(x, label=y, params={"min_data_in_bin": 1, "verbose": -1})
        self.booster = lightgbm.train(params, data, num_boost_round=self.rounds)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("fit the regression before predicting")
        return np.asarray(self.booster.predict(x))


def make_regressor(name: str, seed: int = 0) -> Regressor:
    if name == "linear":
        return ScheffeRegression(1)
    if name == "quadratic":
        return ScheffeRegression(2, ridge=1e-3)
    if name == "lightgbm":
        if not lightgbm_available():
            raise ConfigError("regression model lightgbm needs the lightgbm package; pip install lightgbm")
        return LightGBMRegression(seed)
    raise ConfigError(f"unknown regression model {name!r}; choose from {', '.join(MODELS)} or auto")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank (what Spearman's rho needs)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    _, inverse = np.unique(values, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def rank_correlation(predicted: np.ndarray, actual: np.ndarray) -> float | None:
    """Spearman's rho (Pearson's r of average ranks; numpy only: scipy.stats costs a second to import),
    or None when it is undefined (fewer than 3 points, or a constant side)."""
    if len(actual) < 3 or np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        return None
    return float(np.corrcoef(average_ranks(np.asarray(predicted)), average_ranks(np.asarray(actual)))[0, 1])


def candidate_models(model: str) -> list[str]:
    if model != "auto":
        make_regressor(model)  # fail early on an unknown or uninstalled model
        return [model]
    return [m for m in MODELS if m != "lightgbm" or lightgbm_available()]


def out_of_fold(name: str, x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each run's prediction by a model fitted without it (k-fold): every run is held out once."""
    order = np.random.default_rng(seed).permutation(len(y))
    predicted = np.empty(len(y))
    for held in np.array_split(order, folds):
        fit_on = np.setdiff1d(order, held)
        predicted[held] = make_regressor(name, seed).fit(x[fit_on], y[fit_on]).predict(x[held])
    return predicted


def fit_regressions(
    x: np.ndarray, y: np.ndarray, model: str = "auto", folds: int = 5, seed: int = 0
) -> tuple[Regressor, dict[str, Any]]:
    """Score each candidate by the Spearman correlation of its held-out (out-of-fold) predictions with
    the runs' objectives, pick the best (ties: the simpler model, listed first), refit it on every run.

    Why k-fold rather than one held-out split: with tens of runs a single split of a handful of runs
    ranks models by luck; out-of-fold predictions hold out every run once. Returns the fitted model and
    a JSON report.
    """
    folds = min(folds, len(y))
    scores: dict[str, dict[str, Any]] = {}
    for name in candidate_models(model):
        entry: dict[str, Any] = {"spearman": None, "held_out_mae": None}
        if folds >= 2 and len(y) >= 4:
            predicted = out_of_fold(name, x, y, folds, seed)
            entry = {
                "spearman": rank_correlation(predicted, y),
                "held_out_mae": float(np.abs(predicted - y).mean()),
            }
        scores[name] = entry
    chosen = max(scores, key=lambda n: -2.0 if scores[n]["spearman"] is None else scores[n]["spearman"])
    report = {"runs": int(len(y)), "folds": int(folds), "models": scores, "chosen": chosen}
    return make_regressor(chosen, seed).fit(x, y), report


def total_variation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise total-variation distance (half the L1 norm) between rows of ``a`` (N, D) and ``b`` (M, D)."""
    return 0.5 * np.abs(a[:, None, :] - b[None, :, :]).sum(axis=-1)


def support_radius(runs: np.ndarray) -> float:
    """The median distance from a proxy run to its nearest other run: how densely the data covers the
    simplex. A simulated mixture farther than this from every run is an extrapolation."""
    if len(runs) < 2:
        return 1.0
    distances = total_variation(runs, runs)
    np.fill_diagonal(distances, np.inf)
    return float(np.median(distances.min(axis=1)))


def search_top_k(
    regressor: Regressor,
    center: np.ndarray,
    rng: np.random.Generator,
    samples: int = 100_000,
    top_k: int = 100,
    scales: tuple[float, float] = (0.3, 5.0),
    support: np.ndarray | None = None,
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Mean of the ``top_k`` simulated mixtures with the lowest predicted objective, its prediction, and
    how the search was constrained.

    With ``support`` (the mixtures the proxies were trained on), only simulated mixtures within
    :func:`support_radius` of some run compete (or, if fewer than ``top_k`` are, the ``top_k`` closest):
    with tens of runs a regression is confident exactly where it has no data, e.g. a linear fit on a
    domain whose weight never left [0, 0.15] drives the top-k to that domain's vertex. With hundreds of
    runs the radius covers the prior and this is plain RegMix.
    """
    simulated = dirichlet_mixtures(center, samples, rng, scales)
    predicted = regressor.predict(simulated)
    info: dict[str, Any] = {"samples": samples, "top_k": top_k, "radius": None, "within": samples}
    if support is not None:
        radius = support_radius(support)
        nearest = np.concatenate(
            [
                total_variation(chunk, support).min(axis=1)
                for chunk in np.array_split(simulated, max(1, samples // 4096))
            ]
        )
        inside = nearest <= radius
        if inside.sum() < top_k:
            inside = np.zeros(samples, bool)
            inside[np.argsort(nearest, kind="stable")[:top_k]] = True
        predicted = np.where(inside, predicted, np.inf)
        info |= {"radius": radius, "within": int((nearest <= radius).sum())}
    best = np.argsort(predicted, kind="stable")[: min(top_k, samples)]
    answer = simulated[best].mean(axis=0)
    return answer / answer.sum(), float(regressor.predict(answer[None, :])[0]), info


class RegMix(Strategy):
    """K proxies on Dirichlet mixtures, a regression weights -> objective, top-k search over the fit."""

    name = "regmix"

    def __init__(
        self,
        model: str = "auto",
        folds: int = 5,
        samples: int = 100_000,
        top_k: int = 100,
        scales: tuple[float, float] = (0.3, 5.0),
        trust_region: bool = True,
    ) -> None:
        candidate_models(model)
        self.trust_region = trust_region
        self.name = "regmix" if trust_region else "regmix-free"
        self.model, self.folds, self.scales = model, folds, scales
        self.samples, self.top_k = samples, top_k

    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        problem.objective.check(env.eval_names)
        runs = problem.budget.runs
        if runs < 3:
            raise ConfigError(f"regmix needs a budget of at least 3 proxy runs to fit anything, got {runs}")
        rng = np.random.default_rng(problem.seed)
        center = as_vector(env.natural, env.domains)
        mixtures = dirichlet_mixtures(center, runs, rng, self.scales)
        results = (runner or Runner()).map(run_request, env.spec, self._requests(env, problem, mixtures))
        objective = np.array([problem.objective.value(r.bpb) for r in results])
        regressor, fit_report = fit_regressions(mixtures, objective, self.model, self.folds, problem.seed)
        answer, predicted, search = search_top_k(
            regressor,
            center,
            rng,
            self.samples,
            self.top_k,
            self.scales,
            mixtures if self.trust_region else None,
        )
        weights = as_weights(answer, env.domains)
        report = {
            "params": self.params(),
            "regression": fit_report,
            "predicted_objective": predicted,
            "search": search,
            "best_proxy_objective": float(objective.min()),
            "runs": [
                {"weights": as_weights(w, env.domains), "objective": float(o), "bpb": r.bpb}
                for w, o, r in zip(mixtures, objective, results, strict=True)
            ],
        }
        steps = runs * problem.budget.steps
        return MixResult(self.name, weights, [dict(weights)] * problem.stages, report, runs, steps)

    def _requests(self, env: ProxyEnvironment, problem: MixProblem, mixtures: np.ndarray) -> list[RunRequest]:
        return [
            RunRequest(
                steps=problem.budget.steps,
                seed=problem.seed,
                schedule=(as_weights(mixture, env.domains),),
                init_state=problem.init_state,
                initial_weights=dict(problem.source_weights) if problem.source_weights else None,
            )
            for mixture in mixtures
        ]


def synthetic_surface(
    weights: Sequence[float] | np.ndarray, optimum: np.ndarray, scale: float = 1.0
) -> float:
    """A known response with its minimum at ``optimum`` (a quadratic bowl on the simplex), for tests and
    for checking a regression setup before spending proxy compute on it."""
    diff = np.asarray(weights) - optimum
    return float(scale * (diff @ diff))
