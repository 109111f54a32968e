"""The strategies' evaluation environment: tiny proxy runs on token shards, scored per evaluation set.

Why not ``trainer.proxy.train_proxy``: a mixing strategy needs control that a training command should not
offer. Batches are drawn by domain weights that change between stages; DoReMi reweights the loss per
domain at every step from per-token losses; the agent observes per-domain evaluation between stages; a
continual run starts from a given model state; and a search trains hundreds of runs that need no run
folder, checkpoint or resume. Everything else is the trainer's: the model (``TransformerLM``), the
precision ``Recipe``, AdamW with its warmup + cosine schedule, the token-shard reader, ``WindowSampler``,
the suite tokenizer and the exact bits-per-byte evaluation. Only the loop lives here.

Scoring: given a mixture folder written by ``curate mix --tokens`` (or its ``tokens/`` folder), every
candidate is scored on the corpus's evaluation suite (``mixers.suite``): documents chosen by a hash of
their id before any sampling, which the sampler never drew, so no candidate trains on them and all are
scored on the same documents, whatever their weights. The proxies then train on every document of the
shards, and the suite's hash goes into every run's result and every report. Plain token shards without a
suite fall back to a seeded held-out split of their own documents (``eval_suite`` null): it is fixed for
one search, but scores on it compare with no other corpus's.

Determinism: a run is a pure function of (environment spec, request): model initialisation uses a
forked torch RNG seeded by the run's seed, batch ``k`` of domain ``d`` is a pure function of (seed, d, k),
and the rows a batch gives each domain come from systematic sampling seeded by (seed, k). With the same
number of torch threads a run gives the same figures in this process or in a Ray worker.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curate.errors import ConfigError
from mixers.strategies.weights import Controller, Schedule, Weights, as_vector, normalise
from mixers.suite import HELD_OUT, TARGET
from trainer.evaluate import bits_per_byte, documents_nats
from trainer.model import TransformerLM, lm_loss, model_config
from trainer.optim import build_optimizers, lr_factor, set_lr
from trainer.precision import PrecisionConfig, Recipe
from trainer.proxy import MIX_KIND, resolve_source, tokenize_suite
from trainer.token_shards import TokenShards, WindowSampler, is_token_dir
from trainer.train import padded_vocab

RowWeights = Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor]
SUITE_CACHE = Path(".cache/strategies/suites")
HELD_OUT_PREFIX, TARGET_PREFIX = f"{HELD_OUT}:", f"{TARGET}:"  # a tokenized suite's domain names


@dataclass(frozen=True)
class ProxyConfig:
    """Shape and recipe of every proxy in an environment; the defaults make a ~100k-parameter model
    (with a 512-token vocabulary) whose 30-step run takes about a second on one CPU core."""

    d_model: int = 48
    n_layers: int = 2
    n_heads: int = 4
    seq_len: int = 64
    batch_size: int = 8
    lr: float = 1e-2
    weight_decay: float = 0.1
    warmup_fraction: float = 0.1
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_fraction: float = 0.1  # held-out split of plain token shards only (a mixture's suite is fixed)
    max_eval_docs: int = 32
    eval_tokens: int = 4096  # per evaluation set: its leading documents (suite order) up to this many
    split_seed: int = 0
    precision: str = "fp32"
    threads: int = 1

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


@dataclass(frozen=True)
class EnvSpec:
    """Everything needed to rebuild an environment in another process (a Ray worker).

    ``domains`` restricts training to a subset of the shards' domains (default: all of them);
    ``eval_sets`` attaches extra token-shard folders, tokenized with the same tokenizer, evaluated whole;
    ``suite`` is the mixture's evaluation suite as (hash, its documents tokenized with the shards'
    tokenizer), None for plain token shards.
    """

    token_dir: str
    config: ProxyConfig = field(default_factory=ProxyConfig)
    eval_sets: tuple[tuple[str, str], ...] = ()
    domains: tuple[str, ...] | None = None
    suite: tuple[str, str] | None = None

    @classmethod
    def create(
        cls,
        token_dir: Path | str,
        config: ProxyConfig | None = None,
        eval_sets: Mapping[str, Path | str] | None = None,
        domains: Sequence[str] | None = None,
    ) -> EnvSpec:
        """``token_dir``: token shards, a mixture folder with token shards, or its ``tokens/`` folder; a
        mixture's suite is tokenized here, once, so Ray workers only read it."""
        sets = tuple(sorted((name, str(Path(path).resolve())) for name, path in (eval_sets or {}).items()))
        shards, suite = shards_and_suite(Path(token_dir))
        return cls(
            str(shards),
            config or ProxyConfig(),
            sets,
            tuple(sorted(domains)) if domains is not None else None,
            tokenized_suite(suite, shards) if suite else None,
        )


def shards_and_suite(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """(token shards, the mixture's suite {hash, path} or None) of token shards, a mixture folder, or a
    mixture's ``tokens/`` folder (its suite is the mixture's: those shards never hold a suite document)."""
    path = path.resolve()
    for folder in (path, path.parent):
        if not _is_mixture(folder):
            continue
        source = resolve_source(folder)
        if source.token_dir is None:
            raise ConfigError(
                f"{folder}: a mixture without token shards; build it with `curate mix --tokens`"
            )
        if folder == path or source.token_dir.resolve() == path:
            return source.token_dir.resolve(), source.suite
    if not is_token_dir(path):
        raise ConfigError(f"{path}: neither token shards (tokens.json) nor a mixture folder of `curate mix`")
    return path, None


def _is_mixture(folder: Path) -> bool:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False
    content = json.loads(manifest.read_text(encoding="utf-8"))
    return isinstance(content, dict) and content.get("kind") == MIX_KIND


def tokenized_suite(suite: dict[str, Any], shards: Path) -> tuple[str, str]:
    """(hash, folder) of the suite tokenized with the shards' tokenizer, cached under
    ``.cache/strategies/suites/`` by suite hash and tokenizer (the trainer's ``tokenize_suite``)."""
    tokens = TokenShards(shards)
    key = f"{suite['hash'][:16]}-{tokens.meta['tokenizer']['sha256'][:16]}"
    cache = (SUITE_CACHE / key).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    folder = tokenize_suite(suite, cache, tokens.tokenizer_path)
    return suite["hash"], str(folder)


@dataclass(frozen=True)
class Observation:
    """What a controller sees at a stage boundary, before choosing that stage's weights.

    ``history[0]`` is the evaluation before the first stage, ``history[-1]`` the latest; ``weights`` are
    the previous stage's (for the first stage: what the starting model was trained on, or natural).
    """

    stage: int
    stages: int
    steps_done: int
    total_steps: int
    domains: tuple[str, ...]
    weights: Weights
    natural: Weights
    history: tuple[dict[str, float], ...]

    @property
    def progress(self) -> float:
        return self.steps_done / max(self.total_steps, 1)


@dataclass(frozen=True)
class RunRequest:
    """One proxy run: a fixed schedule of stage weights, or a controller choosing them as it goes.

    ``eval_stages`` evaluates before the first and after every stage (a controller always does); the
    figures are returned in ``RunResult.history``. ``init_state`` starts from a model state (continual
    pretraining) trained on ``initial_weights``.
    """

    steps: int
    seed: int
    schedule: tuple[Weights, ...] = ()
    controller: Controller | None = None
    stages: int = 0
    eval_stages: bool = False
    init_state: Any = field(default=None, compare=False, repr=False)
    initial_weights: Weights | None = None
    return_state: bool = False

    @property
    def n_stages(self) -> int:
        return self.stages or len(self.schedule)


@dataclass
class RunResult:
    """Final bits per byte of every evaluation set, the weights each stage used, and the history."""

    bpb: dict[str, float]
    schedule: Schedule
    history: list[dict[str, float]]
    steps: int
    tokens: int
    seed: int
    seconds: float
    eval_suite: str | None = None  # hash of the evaluation suite scored on (None: a held-out split)
    state: Any = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "state"}


def stage_steps(steps: int, stages: int) -> list[int]:
    """Split ``steps`` into ``stages`` near-equal whole parts (earlier stages take the remainder)."""
    if stages <= 0 or steps < stages:
        raise ConfigError(f"a run of {steps} steps cannot be split into {stages} stages; use more steps")
    base, extra = divmod(steps, stages)
    return [base + (1 if i < extra else 0) for i in range(stages)]


def systematic_rows(weights: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Domain index of each batch row by systematic sampling: domain d gets floor or ceil of
    ``weights[d] * batch_size`` rows and exactly that many in expectation, so a small weight is still
    honoured on average while the batch-to-batch noise is far below independent draws."""
    positions = (rng.random() + np.arange(batch_size)) / batch_size
    edges = np.cumsum(weights)
    edges[-1] = 1.0 + 1e-12
    return np.searchsorted(edges, positions, side="right").clip(0, len(weights) - 1)


def domain_seed(seed: int, domain: str) -> int:
    """Window seed of one domain, stable under adding or removing other domains."""
    return (seed * 1_000_003 + zlib.crc32(domain.encode())) % 2**63


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Runs compare equal only under the same thread count, and one thread wins on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ProxyEnvironment:
    """Token shards + proxy shape: trains proxies on weighted mixes and scores them per evaluation set."""

    _cache: dict[EnvSpec, ProxyEnvironment] = {}

    def __init__(self, spec: EnvSpec) -> None:
        self.spec, self.config = spec, spec.config
        self.shards = TokenShards(Path(spec.token_dir))
        self.domains = self._choose_domains(spec.domains)
        self.suite_hash = spec.suite[0] if spec.suite else None
        held_out = 0.0 if spec.suite else self.config.eval_fraction  # a suite scores: train on everything
        split = self.shards.split(held_out, self.config.max_eval_docs, self.config.split_seed)
        self.train_docs = {d: self._of_domain(self.shards, split.train, d) for d in self.domains}
        self._check_enough_tokens()
        self.natural = normalise(
            {d: float(self.shards.lengths[docs].sum()) for d, docs in self.train_docs.items()}, self.domains
        )
        if spec.suite:
            self.eval_sets = self._suite_sets(TokenShards(Path(spec.suite[1])))
        else:
            self.eval_sets = {
                d: (self.shards, self._capped(self.shards, self._of_domain(self.shards, split.eval, d)))
                for d in self.domains
            }
        for name, path in spec.eval_sets:
            self.eval_sets[name] = self._extra_set(name, Path(path))
        self.model_config = model_config(
            "tiny",
            padded_vocab(self.shards.vocab_size),
            d_model=self.config.d_model,
            n_layers=self.config.n_layers,
            n_heads=self.config.n_heads,
            max_seq_len=self.config.seq_len,
        )
        self.device = torch.device("cpu")

    @classmethod
    def cached(cls, spec: EnvSpec) -> ProxyEnvironment:
        """One environment per spec and process: Ray workers build it once for all their tasks."""
        if spec not in cls._cache:
            cls._cache[spec] = cls(spec)
        return cls._cache[spec]

    @classmethod
    def open(cls, token_dir: Path | str, config: ProxyConfig | None = None, **spec: Any) -> ProxyEnvironment:
        return cls.cached(EnvSpec.create(token_dir, config, **spec))

    def _choose_domains(self, wanted: Sequence[str] | None) -> list[str]:
        if wanted is None:
            return list(self.shards.domains)
        unknown = sorted(set(wanted) - set(self.shards.domains))
        if unknown or not wanted:
            raise ConfigError(
                f"domains {unknown or '[]'} not in {self.shards.folder}; known: {self.shards.domains}"
            )
        return sorted(wanted)

    @staticmethod
    def _of_domain(shards: TokenShards, docs: np.ndarray, domain: str) -> np.ndarray:
        if domain not in shards.domains:
            return docs[:0]
        return docs[shards.domain_ids[docs] == shards.domains.index(domain)]

    def _suite_sets(self, suite: TokenShards) -> dict[str, tuple[TokenShards, np.ndarray]]:
        """Each training domain's suite documents, and each target set of the suite under its name."""
        every = np.arange(len(suite))
        sets = {
            d: (suite, self._capped(suite, self._of_domain(suite, every, HELD_OUT_PREFIX + d)))
            for d in self.domains
        }
        empty = [d for d, (_, docs) in sets.items() if not len(docs)]
        if empty:
            raise ConfigError(
                f"the evaluation suite holds no document of domain(s) {empty}; raise the mixture's "
                "`eval.tokens` / `eval.max_share`, or leave those domains out"
            )
        for name in suite.domains:
            if name.startswith(TARGET_PREFIX):
                target = name.removeprefix(TARGET_PREFIX)
                sets[target] = (suite, self._capped(suite, self._of_domain(suite, every, name)))
        return sets

    def _capped(self, shards: TokenShards, docs: np.ndarray) -> np.ndarray:
        """Leading documents within the evaluation token cap (at least one): evaluation stays cheap."""
        if not len(docs):
            return docs
        within = np.cumsum(shards.lengths[docs]) <= self.config.eval_tokens
        return docs[: max(1, int(within.sum()))]

    def _check_enough_tokens(self) -> None:
        need = self.config.seq_len + 1
        for domain, docs in self.train_docs.items():
            have = int(self.shards.lengths[docs].sum())
            if have < need:
                raise ConfigError(
                    f"domain {domain} has {have} training tokens, fewer than one window of {need}; "
                    "add documents or lower seq_len"
                )

    def _extra_set(self, name: str, path: Path) -> tuple[TokenShards, np.ndarray]:
        if name in self.domains:
            raise ConfigError(f"evaluation set {name} has a training domain's name; rename it")
        shards = TokenShards(path)
        if shards.meta["tokenizer"]["sha256"] != self.shards.meta["tokenizer"]["sha256"]:
            raise ConfigError(
                f"evaluation set {name} ({path}) was tokenized with another tokenizer than "
                f"{self.shards.folder}; re-tokenize it with the training shards' tokenizer"
            )
        return shards, self._capped(shards, np.arange(len(shards)))

    @property
    def eval_names(self) -> list[str]:
        return list(self.eval_sets)

    def parameters(self) -> int:
        """Parameters of the proxy, embeddings included (at this scale they are most of the model)."""
        with torch.device("meta"):
            return sum(p.numel() for p in TransformerLM(self.model_config).parameters())

    def describe(self) -> dict[str, Any]:
        return {
            "token_dir": self.spec.token_dir,
            "domains": self.domains,
            "natural": self.natural,
            "eval_suite": self.suite_hash,
            "eval_sets": {name: int(docs.size) for name, (_, docs) in self.eval_sets.items()},
            "proxy": asdict(self.config),
            "parameters": self.parameters(),
        }

    def new_run(self, seed: int, total_steps: int, init_state: Any = None) -> ProxyRun:
        return ProxyRun(self, seed, total_steps, init_state)

    def evaluate(self, model: torch.nn.Module, recipe: Recipe) -> dict[str, float]:
        """Bits per byte of every evaluation set (held-out documents of each domain, extra sets whole)."""
        scores: dict[str, float] = {}
        for name, (shards, docs) in self.eval_sets.items():
            nats, _ = documents_nats(
                model, recipe, shards, docs, self.config.seq_len, self.config.batch_size, self.device
            )
            scores[name] = bits_per_byte(nats, int(shards.n_bytes[docs].sum()))
        return scores

    def run(self, request: RunRequest) -> RunResult:
        """Train one proxy as requested; stage by stage, evaluating between stages when asked."""
        started = time.perf_counter()
        counts = stage_steps(request.steps, request.n_stages)
        proxy = self.new_run(request.seed, request.steps, request.init_state)
        observe = request.controller is not None or request.eval_stages
        history = [self.evaluate(proxy.model, proxy.recipe)] if observe else []
        previous = normalise(request.initial_weights or self.natural, self.domains)
        used: Schedule = []
        for stage, count in enumerate(counts):
            weights = self._stage_weights(request, stage, proxy.step, previous, history)
            vector = as_vector(weights, self.domains)
            for _ in range(count):
                proxy.update(vector)
            used.append(weights)
            previous = weights
            if observe and stage < len(counts) - 1:
                history.append(self.evaluate(proxy.model, proxy.recipe))
        final = self.evaluate(proxy.model, proxy.recipe)
        if observe:
            history.append(final)
        return RunResult(
            bpb=final,
            schedule=used,
            history=history,
            steps=request.steps,
            tokens=request.steps * self.config.tokens_per_step,
            seed=request.seed,
            seconds=time.perf_counter() - started,
            eval_suite=self.suite_hash,
            state=proxy.model.state_dict() if request.return_state else None,
        )

    def _stage_weights(
        self, request: RunRequest, stage: int, step: int, previous: Weights, history: list[dict[str, float]]
    ) -> Weights:
        if request.controller is None:
            return normalise(request.schedule[stage], self.domains)
        observation = Observation(
            stage=stage,
            stages=request.n_stages,
            steps_done=step,
            total_steps=request.steps,
            domains=tuple(self.domains),
            weights=previous,
            natural=self.natural,
            history=tuple(history),
        )
        return normalise(request.controller(observation), self.domains)

    def pretrain(self, weights: Weights, steps: int, seed: int) -> tuple[Any, RunResult]:
        """A starting model for continual pretraining: a proxy trained on ``weights`` (the source mix)."""
        result = self.run(RunRequest(steps=steps, seed=seed, schedule=(weights,), return_state=True))
        return result.state, result


class ProxyRun:
    """One proxy being trained: model, optimiser, one window sampler per domain, the step counter."""

    def __init__(self, env: ProxyEnvironment, seed: int, total_steps: int, init_state: Any = None) -> None:
        cfg = env.config
        self.env, self.seed, self.total_steps, self.step = env, seed, total_steps, 0
        self.recipe = Recipe(PrecisionConfig(name=cfg.precision), env.device, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self.recipe.prepare(TransformerLM(env.model_config)).to(env.device)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.optimizers = build_optimizers(self.model, "adamw", cfg.lr, cfg.weight_decay, (0.9, 0.95), 0.02)
        self.warmup = max(1, round(cfg.warmup_fraction * total_steps))
        self.samplers = [
            WindowSampler(env.shards, env.train_docs[d], cfg.batch_size, cfg.seq_len, domain_seed(seed, d))
            for d in env.domains
        ]

    def draw(self, weights: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Batch ``self.step``: (B, T+1) token windows and the domain index of each row."""
        cfg = self.env.config
        rows = systematic_rows(weights, cfg.batch_size, np.random.default_rng((self.seed, self.step, 77)))
        batch = np.empty((cfg.batch_size, cfg.seq_len + 1), dtype=np.int64)
        for domain in np.unique(rows):
            chosen = rows == domain
            batch[chosen] = self.samplers[domain].batch(self.step)[: int(chosen.sum())]
        return torch.from_numpy(batch), rows

    def token_losses(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """Per-token cross-entropy (nats), shape (B, T)."""
        with self.recipe.autocast():
            logits = model(batch[:, :-1])
        return lm_loss(logits, batch[:, 1:], reduction="none").view(batch.shape[0], -1)

    def update(self, weights: np.ndarray, row_weights: RowWeights | None = None) -> np.ndarray:
        """One optimiser step on a batch drawn by ``weights``; returns the rows' domain indices.

        The loss is the mean over rows, or ``sum_r row_weights[r] * mean_token_loss[r]`` when a callback
        gives row weights: DoReMi's reweighting sees the batch, the detached per-token losses (B, T) and
        the rows' domains before the step.
        """
        cfg = self.env.config
        set_lr(
            self.optimizers,
            lr_factor(self.step, self.total_steps, self.warmup, "cosine", cfg.min_lr_ratio, 1.0),
        )
        batch, rows = self.draw(weights)
        losses = self.token_losses(self.model, batch)
        if row_weights is None:
            per_row = torch.full((len(rows),), 1.0 / len(rows))
        else:
            per_row = row_weights_checked(row_weights(batch, losses.detach(), rows), len(rows))
        loss = (losses.mean(dim=1) * per_row).sum()
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        for optimizer in self.optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return rows


def row_weights_checked(weights: torch.Tensor, rows: int) -> torch.Tensor:
    """A reweighting callback's answer, validated: one finite weight per row, no gradient."""
    if not isinstance(weights, torch.Tensor) or weights.shape != (rows,) or not torch.isfinite(weights).all():
        raise ValueError(f"row weights must be a tensor of shape ({rows},)")
    return weights.detach().float()
