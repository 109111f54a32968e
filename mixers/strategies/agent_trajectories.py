"""The mixing agent's data: proxy runs with random re-weighting schedules, recorded as trajectories.

Each trajectory keeps every evaluation set's bits per byte before the first stage and after each one, so
its reward can be recomputed for any objective later (hindsight relabelling, see :mod:`agent`): one
collection trains an agent for many targets. Stored as JSON lines, merged across collections.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.errors import ConfigError
from curate.storage import write_atomic
from mixers.strategies.environment import RunRequest, RunResult, stage_steps
from mixers.strategies.parallel import Runner
from mixers.strategies.regmix import dirichlet_mixtures
from mixers.strategies.weights import Weights, as_vector, as_weights

if TYPE_CHECKING:
    from mixers.strategies.environment import ProxyEnvironment

TRAJECTORIES_FILE = "trajectories.jsonl"


def random_schedule(center: np.ndarray, stages: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Stage weights around a per-trajectory center, each stage either kept (p = 0.3) or redrawn from
    a Dirichlet whose concentration is itself random: smooth, jumpy, extreme and balanced schedules."""
    anchor = 0.5 * center + 0.5 / len(center)
    scale = float(np.exp(rng.uniform(math.log(0.3), math.log(5.0))))
    schedule: list[np.ndarray] = []
    for _ in range(stages):
        if schedule and rng.random() < 0.3:
            schedule.append(schedule[-1])
        else:
            schedule.append(dirichlet_mixtures(anchor, 1, rng, (scale, scale))[0])
    return schedule


def trajectory_record(
    env: ProxyEnvironment, result: RunResult, initial: Weights, continual: bool
) -> dict[str, Any]:
    return {
        "domains": list(env.domains),
        "natural": dict(env.natural),
        "initial_weights": dict(initial),
        "schedule": result.schedule,
        "stage_steps": stage_steps(result.steps, len(result.schedule)),
        "history": result.history,
        "steps": result.steps,
        "seed": result.seed,
        "continual": continual,
        "token_dir": env.spec.token_dir,
    }


@dataclass(frozen=True)
class CollectRequest:
    run: RunRequest
    continual: bool


def collect_job(env: ProxyEnvironment, request: CollectRequest) -> dict[str, Any]:
    result = env.run(request.run)
    initial = request.run.initial_weights or env.natural
    return trajectory_record(env, result, initial, request.continual)


def collect(
    env: ProxyEnvironment,
    trajectories: int,
    stages: int,
    steps: int,
    seed: int = 0,
    runner: Runner | None = None,
    init_state: Any = None,
    initial_weights: Weights | None = None,
) -> list[dict[str, Any]]:
    """Proxy runs with random re-weighting schedules, evaluated before and after every stage.

    Each run has its own seed, so the data covers model-initialisation noise as well as schedules.
    ``init_state`` collects continual-pretraining trajectories (from a model trained on ``initial_weights``).
    """
    if trajectories <= 0:
        raise ConfigError(f"collect needs at least one trajectory, got {trajectories}")
    stage_steps(steps, stages)  # fail now if the steps cannot be split
    rng = np.random.default_rng(seed)
    center = as_vector(env.natural, env.domains)
    requests = [
        CollectRequest(
            RunRequest(
                steps=steps,
                seed=seed * 100_003 + i,
                schedule=tuple(as_weights(w, env.domains) for w in random_schedule(center, stages, rng)),
                eval_stages=True,
                init_state=init_state,
                initial_weights=dict(initial_weights) if initial_weights else None,
            ),
            init_state is not None,
        )
        for i in range(trajectories)
    ]
    return (runner or Runner()).map(collect_job, env.spec, requests)


def save_trajectories(trajectories: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """JSON lines, replaced atomically (a killed collection never leaves half a file)."""
    path = Path(path)
    write_atomic(path, "".join(json.dumps(t, sort_keys=True) + "\n" for t in trajectories))
    return path


def load_trajectories(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Trajectories from JSONL files or folders holding ``trajectories.jsonl`` (several collections merge)."""
    found: list[dict[str, Any]] = []
    for path in map(Path, paths):
        file = path / TRAJECTORIES_FILE if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(f"{path}: no trajectories file; run `curate agent collect --out {path}` first")
        found += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return found
