"""The mixing agent: a learned policy that re-weights domains between the stages of a training run.

Seed paper: "Data Mixing Agent: Learning to Re-weight Domains for Continual Pre-training". A run is split
into stages; before each stage the agent sees the training state and picks that stage's weights:

* **collect**: many cheap proxy runs (the evaluation environment) with random re-weighting schedules,
  every evaluation set scored before the first and after every stage. A trajectory stores all of it, so
  its reward can be recomputed for *any* objective later (hindsight relabelling): one collection trains
  an agent for many targets, which is what lets it transfer to targets it was not trained with.
* **train**: offline conservative fitted-Q iteration on the transitions. Reward of a stage = the drop of
  the objective over it, relative to the objective at the start of the run (scale-free across targets;
  the undiscounted return telescopes to the run's total relative improvement).
* **run**: a controller that applies the policy inside a proxy (or real) run, stage by stage.

The Q-function is one network shared across domains: per-domain features in (the domain's current
weight, natural share, weight in the objective, its held-out bits per byte relative to its start and to
the other domains, its last change) together with run-level features (progress, the objective's ratio and
last change), a per-domain score ``q_d`` out, and ``Q(s, a) = b(s) + sum_d a_d q_d(s) + kappa * H(a)``:
linear in the mixture to first order (a stage's update is a mixture of per-domain gradients) plus an
entropy bonus ``kappa`` learned from the data, which models the diminishing return of concentrating on
one domain. Its maximiser over the simplex is exactly a softmax over domains, ``a* = softmax(q / kappa)``,
and its maximum is ``b + kappa * logsumexp(q / kappa)``, which gives closed-form Bellman targets. Nothing
depends on the number of domains (mean pooling, masks), so a policy trained on three domains runs on two
or five. The conservative (CQL) term ``V(s) - Q(s, a_data)`` keeps the learned values from preferring
mixtures the data never tried.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from curate.errors import ConfigError
from mixers.strategies.base import MixProblem, MixResult, Objective, Strategy
from mixers.strategies.environment import Observation, RunRequest, stage_steps, torch_threads
from mixers.strategies.parallel import Runner, run_request
from mixers.strategies.regmix import dirichlet_mixtures
from mixers.strategies.weights import Weights, as_vector, as_weights, average_schedule

if TYPE_CHECKING:
    from mixers.strategies.environment import ProxyEnvironment

CARD_FORMAT = "curate-mixing-agent"
CARD_VERSION = 1
POLICY_FILE = "policy.pt"
CARD_FILE = "card.json"
DOMAIN_FEATURES = ("weight", "natural", "objective", "bpb_ratio", "bpb_relative", "bpb_change")
RUN_FEATURES = ("progress", "stage_share", "objective_ratio", "objective_change")
FEATURES = DOMAIN_FEATURES + RUN_FEATURES


# --------------------------------------------------------------------------------------------- features


def state_features(
    history: Sequence[Mapping[str, float]],
    weights: np.ndarray,
    natural: np.ndarray,
    domains: Sequence[str],
    objective: Objective,
    progress: float,
    stages: int,
) -> np.ndarray:
    """(D, F) features of the state after ``history`` (evaluations so far, first = before training).

    Shares are multiplied by D (1 = a uniform share), losses are ratios: the same numbers mean the same
    thing for any number of domains and any tokenizer.
    """
    n = len(domains)
    start = np.array([history[0][d] for d in domains])
    now = np.array([history[-1][d] for d in domains])
    before = np.array([history[-2][d] for d in domains]) if len(history) > 1 else now
    on_domains = objective.on_domains(domains)
    values = [objective.value(h) for h in history]
    run = [
        progress,
        1.0 / stages,
        values[-1] / values[0],
        (values[-1] - (values[-2] if len(values) > 1 else values[-1])) / values[0],
    ]
    per_domain = np.stack(
        [
            n * weights,
            n * natural,
            n * on_domains,
            now / start,
            (now - now.mean()) / now.mean(),
            (now - before) / start,
        ],
        axis=1,
    )
    return np.hstack([per_domain, np.tile(run, (n, 1))]).astype(np.float32)


@dataclass
class Transitions:
    """Padded arrays of (state, action, reward, next state, done); masks mark real domains."""

    state: np.ndarray
    mask: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_state: np.ndarray
    done: np.ndarray
    trajectory: np.ndarray

    def __len__(self) -> int:
        return len(self.reward)

    def subset(self, keep: np.ndarray) -> Transitions:
        return Transitions(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


def trajectory_transitions(trajectory: Mapping[str, Any], objective: Objective) -> list[tuple]:
    """(state, action, reward, next state, done) of every stage of one trajectory under ``objective``."""
    domains, history = trajectory["domains"], trajectory["history"]
    natural = as_vector(trajectory["natural"], domains)
    counts = trajectory["stage_steps"]
    stages, total = len(counts), sum(counts)
    done_steps = np.concatenate([[0], np.cumsum(counts)])
    previous = as_vector(trajectory["initial_weights"], domains)
    start = objective.value(history[0])
    rows = []
    for t, weights in enumerate(trajectory["schedule"]):
        action = as_vector(weights, domains)
        state = state_features(
            history[: t + 1], previous, natural, domains, objective, done_steps[t] / total, stages
        )
        following = state_features(
            history[: t + 2], action, natural, domains, objective, done_steps[t + 1] / total, stages
        )
        reward = (objective.value(history[t]) - objective.value(history[t + 1])) / start
        rows.append((state, action, reward, following, float(t == stages - 1)))
        previous = action
    return rows


def build_transitions(
    trajectories: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> Transitions:
    """Every trajectory relabelled with every objective it can be scored on, padded to the most domains."""
    rows, owners = [], []
    for index, trajectory in enumerate(trajectories):
        names = set(trajectory["history"][0])
        for objective in objectives:
            if set(objective.weights) <= names:
                found = trajectory_transitions(trajectory, objective)
                rows += found
                owners += [index] * len(found)
    if not rows:
        raise ConfigError("no transitions: the objectives name evaluation sets the trajectories never scored")
    width = max(r[1].shape[0] for r in rows)
    n_features = rows[0][0].shape[1]
    state = np.zeros((len(rows), width, n_features), np.float32)
    following = np.zeros_like(state)
    mask = np.zeros((len(rows), width), bool)
    action = np.zeros((len(rows), width), np.float32)
    for i, (s, a, _, s2, _) in enumerate(rows):
        d = a.shape[0]
        state[i, :d], following[i, :d], action[i, :d], mask[i, :d] = s, s2, a, True
    reward = np.array([r[2] for r in rows], np.float32)
    done = np.array([r[4] for r in rows], np.float32)
    return Transitions(state, mask, action, reward, following, done, np.array(owners))


# ---------------------------------------------------------------------------------------------- network


class DomainQNetwork(nn.Module):
    """Per-domain encoder + mean pooling -> per-domain scores q_d, a state baseline b and kappa > 0."""

    def __init__(self, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.baseline = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.log_kappa = nn.Parameter(torch.tensor(math.log(0.05)))

    def forward(
        self, state: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """state (N, D, F), mask (N, D) -> q (N, D) (-inf where masked), b (N,), kappa ()."""
        hidden = self.encoder(state)
        weights = mask.unsqueeze(-1).float()
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        both = torch.cat([hidden, pooled.unsqueeze(1).expand_as(hidden)], dim=-1)
        q = self.score(both).squeeze(-1).masked_fill(~mask, float("-inf"))
        return q, self.baseline(pooled).squeeze(-1), self.log_kappa.exp().clamp(min=1e-3)


def q_of_action(q: torch.Tensor, b: torch.Tensor, kappa: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Q(s, a) = b + sum_d a_d q_d + kappa * H(a); masked domains carry a = 0 and add nothing."""
    linear = torch.where(action > 0, action * q, torch.zeros_like(q)).sum(-1)
    entropy = -(action * torch.log(action.clamp(min=1e-12))).sum(-1)
    return b + linear + kappa * entropy


def soft_value(q: torch.Tensor, b: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """max over the simplex of Q(s, .) = b + kappa * logsumexp(q / kappa)."""
    return b + kappa * torch.logsumexp(q / kappa, dim=-1)


def greedy_action(q: torch.Tensor, kappa: torch.Tensor, epsilon: float) -> torch.Tensor:
    """softmax(q / kappa), mixed with uniform by ``epsilon`` so no domain is ever dropped entirely."""
    probs = torch.softmax(q / kappa, dim=-1)
    mask = torch.isfinite(q).float()
    return (1 - epsilon) * probs + epsilon * mask / mask.sum(-1, keepdim=True)


# --------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainSettings:
    """Offline RL settings; the defaults fit a few hundred transitions in seconds on one core."""

    hidden: int = 64
    iterations: int = 0  # fitted-Q iterations; 0 = stages + 2 (enough to propagate the whole horizon)
    epochs: int = 150
    lr: float = 3e-3
    weight_decay: float = 1e-4
    gamma: float = 1.0
    cql_alpha: float = 0.1
    epsilon: float = 0.05
    holdout: float = 0.2
    seed: int = 0
    threads: int = 1  # tiny matrices: a second thread only adds contention


def _tensors(data: Transitions) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.asarray(getattr(data, name))) for name in data.__dataclass_fields__}


def fitted_q(
    data: Transitions, settings: TrainSettings, horizon: int
) -> tuple[DomainQNetwork, dict[str, Any]]:
    """Conservative fitted-Q iteration: regress Q(s, a) on r + gamma * V_frozen(s') each iteration,
    plus ``cql_alpha * (V(s) - Q(s, a))``. Rewards are divided by their spread so the same settings
    suit any objective scale; the policy (softmax(q / kappa)) does not depend on that scale."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = DomainQNetwork(data.state.shape[-1], settings.hidden)
    t = _tensors(data)
    scale = float(np.std(data.reward)) or 1.0
    reward, mask = t["reward"] / scale, t["mask"]
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    losses: dict[str, float] = {}
    for _ in range(settings.iterations or horizon + 2):
        frozen = copy.deepcopy(net).eval()
        with torch.no_grad():
            target = reward + settings.gamma * (1 - t["done"]) * soft_value(*frozen(t["next_state"], mask))
        for _ in range(settings.epochs):
            q, b, kappa = net(t["state"], mask)
            fitted = q_of_action(q, b, kappa, t["action"])
            bellman = (fitted - target).pow(2).mean()
            conservative = (soft_value(q, b, kappa) - fitted).mean()
            loss = bellman + settings.cql_alpha * conservative
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses = {"bellman_mse": bellman.item(), "conservative_gap": conservative.item()}
    return net.eval(), {**losses, "reward_scale": scale, "kappa": net.log_kappa.exp().item()}


def evaluate_q(net: DomainQNetwork, data: Transitions, gamma: float, scale: float) -> dict[str, float]:
    """Held-out figures: Bellman error relative to the targets' variance (1 - R^2), and how much better
    than the logged mixture the policy believes its own is (in relative-improvement units)."""
    t = _tensors(data)
    with torch.no_grad():
        q, b, kappa = net(t["state"], t["mask"])
        fitted = q_of_action(q, b, kappa, t["action"])
        target = t["reward"] / scale + gamma * (1 - t["done"]) * soft_value(*net(t["next_state"], t["mask"]))
        gap = soft_value(q, b, kappa) - fitted
    variance = float(target.var()) or 1.0
    return {
        "bellman_relative_error": float((fitted - target).pow(2).mean()) / variance,
        "believed_gain_over_data": float(gap.mean()) * scale,
        "transitions": len(data),
    }


def trajectories_checksum(trajectories: Sequence[Mapping[str, Any]]) -> str:
    digest = hashlib.sha256()
    for trajectory in trajectories:
        digest.update(json.dumps(trajectory, sort_keys=True).encode())
    return digest.hexdigest()


def default_objectives(trajectories: Sequence[Mapping[str, Any]]) -> list[Objective]:
    """The average over each trajectory's domains, and each domain as the target of a balanced objective
    (half on the rest of the domains): targets differ, so the policy must read the objective features."""
    found: dict[str, Objective] = {}
    for trajectory in trajectories:
        domains = list(trajectory["domains"])
        candidates = [Objective.average(domains)]
        candidates += [Objective.balanced([d for d in domains if d != t] or domains, [t]) for t in domains]
        for objective in candidates:
            found[json.dumps(objective.to_json(), sort_keys=True)] = objective
    return list(found.values())


def train_policy(
    trajectories: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective] | None = None,
    settings: TrainSettings | None = None,
) -> AgentPolicy:
    """Fit the agent offline; held-out trajectories give the card's metrics, then all data the policy."""
    settings = settings or TrainSettings()
    if not trajectories:
        raise ConfigError("no trajectories to train on; run `curate agent collect` first")
    objectives = list(objectives) if objectives else default_objectives(trajectories)
    data = build_transitions(trajectories, objectives)
    horizon = max(len(t["schedule"]) for t in trajectories)
    started = time.perf_counter()
    metrics: dict[str, Any] = {}
    held = _held_out(len(trajectories), settings)
    with torch_threads(settings.threads):
        if held.size:
            in_held = np.isin(data.trajectory, held)
            net, fit = fitted_q(data.subset(~in_held), settings, horizon)
            metrics["held_out"] = evaluate_q(net, data.subset(in_held), settings.gamma, fit["reward_scale"])
            metrics["held_out"]["trajectories"] = int(held.size)
        net, fit = fitted_q(data, settings, horizon)
    metrics |= {"train": fit, "seconds": time.perf_counter() - started}
    card = {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "features": list(FEATURES),
        "settings": asdict(settings),
        "objectives": [o.to_json() for o in objectives],
        "data": {
            "trajectories": len(trajectories),
            "transitions": len(data),
            "sha256": trajectories_checksum(trajectories),
            "domains_seen": sorted({d for t in trajectories for d in t["domains"]}),
            "domain_counts": sorted({len(t["domains"]) for t in trajectories}),
            "stages": sorted({len(t["schedule"]) for t in trajectories}),
        },
        "metrics": metrics,
    }
    return AgentPolicy(net, card)


def _held_out(count: int, settings: TrainSettings) -> np.ndarray:
    n_held = round(settings.holdout * count) if count >= 5 else 0
    return np.random.default_rng(settings.seed).permutation(count)[:n_held]


# ------------------------------------------------------------------------------------- policy and its IO


class AgentPolicy:
    """A trained Q-network and its card; maps a state to the next stage's weights."""

    def __init__(self, net: DomainQNetwork, card: dict[str, Any]) -> None:
        self.net, self.card = net.eval(), card

    @property
    def epsilon(self) -> float:
        return float(self.card["settings"]["epsilon"])

    def act(self, features: np.ndarray) -> np.ndarray:
        """Weights for one state's (D, F) features."""
        state = torch.from_numpy(np.asarray(features, np.float32)).unsqueeze(0)
        mask = torch.ones(state.shape[:2], dtype=torch.bool)
        with torch.no_grad():
            q, _, kappa = self.net(state, mask)
            action = greedy_action(q, kappa, self.epsilon)[0].double().numpy()
        return action / action.sum()

    def save(self, folder: Path) -> Path:
        """``policy.pt`` (state dict) + ``card.json``, each written then renamed into place."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic(folder / POLICY_FILE, lambda tmp: torch.save(self.net.state_dict(), tmp))
        _atomic(folder / CARD_FILE, lambda tmp: tmp.write_text(json.dumps(self.card, indent=2) + "\n"))
        return folder

    @classmethod
    def load(cls, folder: Path) -> AgentPolicy:
        folder = Path(folder)
        card_path, weights_path = folder / CARD_FILE, folder / POLICY_FILE
        if not card_path.is_file() or not weights_path.is_file():
            raise ConfigError(
                f"{folder}: no trained agent ({CARD_FILE} + {POLICY_FILE}); run `curate agent train`"
            )
        card = json.loads(card_path.read_text())
        if card.get("format") != CARD_FORMAT or card.get("version") != CARD_VERSION:
            raise ConfigError(f"{card_path}: not a {CARD_FORMAT} v{CARD_VERSION} card; retrain the agent")
        if card.get("features") != list(FEATURES):
            raise ConfigError(f"{card_path}: trained on other features than this version computes; retrain")
        net = DomainQNetwork(len(FEATURES), int(card["settings"]["hidden"]))
        net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        return cls(net, card)

    def controller(self, objective: Objective, noise: float = 0.0, seed: int = 0) -> PolicyController:
        return PolicyController(
            {k: v.clone() for k, v in self.net.state_dict().items()}, self.card, objective, noise, seed
        )


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


@dataclass
class PolicyController:
    """The policy as a run's controller; picklable (a state dict, not a module) so it runs in Ray tasks.

    ``noise`` > 0 perturbs each choice with a Dirichlet of concentration ``noise * D`` around it, seeded
    by (seed, stage): exploration rollouts that stay reproducible.
    """

    state_dict: dict[str, torch.Tensor]
    card: dict[str, Any]
    objective: Objective
    noise: float = 0.0
    seed: int = 0
    _policy: AgentPolicy | None = field(default=None, repr=False)

    def policy(self) -> AgentPolicy:
        if self._policy is None:
            net = DomainQNetwork(len(FEATURES), int(self.card["settings"]["hidden"]))
            net.load_state_dict(self.state_dict)
            self._policy = AgentPolicy(net, self.card)
        return self._policy

    def __call__(self, observation: Observation) -> Weights:
        domains = list(observation.domains)
        features = state_features(
            observation.history,
            as_vector(observation.weights, domains),
            as_vector(observation.natural, domains),
            domains,
            self.objective,
            observation.progress,
            observation.stages,
        )
        action = self.policy().act(features)
        if self.noise > 0:
            rng = np.random.default_rng((self.seed, observation.stage, 11))
            action = dirichlet_mixtures(action, 1, rng, (self.noise, self.noise), floor=0.05)[0]
        return as_weights(action, domains)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_policy": None}


# ---------------------------------------------------------------------------------------------- strategy


class Agent(Strategy):
    """The trained policy as a strategy: it acts in ``budget.runs`` rollouts (the first greedy, the rest
    with Dirichlet exploration noise around its choices), all from the problem's seed, and answers with
    the schedule of the best rollout. Its controller acts closed-loop in the evaluated run as well."""

    name = "agent"

    def __init__(self, policy: AgentPolicy | Path | str, noise: float = 20.0) -> None:
        self.policy = policy if isinstance(policy, AgentPolicy) else AgentPolicy.load(Path(policy))
        self.noise = noise

    def params(self) -> dict[str, Any]:
        return {
            "noise": self.noise,
            "card": {k: self.policy.card[k] for k in ("data", "metrics", "settings")},
        }

    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        problem.objective.check(env.eval_names)
        rollouts = max(1, problem.budget.runs)
        requests = [
            RunRequest(
                steps=problem.budget.steps,
                seed=problem.seed,
                controller=self.policy.controller(
                    problem.objective, self.noise if i else 0.0, problem.seed + i
                ),
                stages=problem.stages,
                init_state=problem.init_state,
                initial_weights=dict(problem.source_weights) if problem.source_weights else None,
            )
            for i in range(rollouts)
        ]
        results = (runner or Runner()).map(run_request, env.spec, requests)
        values = [problem.objective.value(r.bpb) for r in results]
        best = int(np.argmin(values))
        schedule = results[best].schedule
        report = {
            "params": self.params(),
            "chosen_rollout": best,
            "rollouts": [
                {"objective": v, "schedule": r.schedule, "history": r.history}
                for v, r in zip(values, results, strict=True)
            ],
        }
        weights = average_schedule(schedule, stage_steps(problem.budget.steps, problem.stages))
        controller = self.policy.controller(problem.objective)
        steps = rollouts * problem.budget.steps
        return MixResult(self.name, weights, schedule, report, rollouts, steps, controller)
