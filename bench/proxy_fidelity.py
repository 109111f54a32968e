"""``curate bench proxy-fidelity``: does the tiny proxy rank mixtures the way a 10x larger model does?

Every mixture search in this project (``curate mix`` + ``curate score``, the strategies of ``curate bench
mixing``) trusts a small proxy to order mixtures the way a bigger model would. DataDecide measured that
trust at scale (~80% of mixture pairs ordered alike by 150M and 1B models); this bench measures it for
ours, on this project's own pipeline, mixer, evaluation suite and trainer:

1. **One scored corpus.** Five real domains (web: the general crawl of ``../shared/data/web`` and the
   DCLM pool documents; books; Wikipedia; news; standard-library code) run once through the pipeline
   with every document annotated, none dropped (:func:`bench.filtering_pool.curate_pool`: KenLM
   perplexity and the quality ensemble), dedup sketches kept for the suite's near-duplicate check.
2. **Mixtures that differ in both ways a curator decides.** Domain weights (uniform, web-heavy,
   prose-heavy, code-heavy) crossed with a quality threshold: keep the top ``keep`` share of each domain
   by its ``quality`` score (a per-domain quantile, so every domain is filtered by the same share).
   Each is built by :func:`mixers.sampler.build_mixture` with one BPE (trained on the whole corpus) and
   the corpus-level evaluation suite (:mod:`mixers.suite`): the same held-out documents for every
   mixture, none of them (nor a near-duplicate) in any mixture. Every run records the suite's hash.
3. **Two model sizes, paired seeds.** The small proxy (the ~105k-parameter shape of
   :class:`mixers.strategies.environment.ProxyConfig`) trains on ``small_tokens``; the large one
   (>= 10x its non-embedding parameters) on ``scale`` times as many tokens of the same mixture, with the
   same batch shape. Both train every mixture with the same seeds, through :func:`trainer.proxy.train_proxy`
   (what ``curate train`` runs), and are scored on the suite (mean bits per byte over its domains).
4. **Fidelity.** Each size ranks the mixtures by mean score over seeds; the bench reports both rankings,
   their Spearman correlation, the share of mixture pairs both sizes order alike, and, per pair,
   whether the small model's difference is beyond seed noise (:func:`mixers.significance.paired_comparison`
   over the paired seeds).

Mixtures, runs and the corpus are cached under OUT (keyed by what decides them), so an interrupted
bench resumes where it stopped. Figures go to OUT/proxy-fidelity.json.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.filtering import pool_tokenizer, quality_threshold
from bench.filtering_pool import FilterModels, corpus_rows, curate_pool, ensure_filter_models, pool_documents
from bench.machine import machine
from bench.mixing_textdata import domain_texts
from curate.errors import ConfigError
from mixers.significance import ALPHA, mean_and_se, paired_comparison
from mixers.strategies.regmix import average_ranks

BENCH_DIR = Path(".cache/bench/proxy-fidelity")
DOMAINS = ("web", "books", "wiki", "news", "code")
MAX_EPOCHS = 100.0  # a cap, not a target: a heavily filtered small domain repeats to fill its share
SCORE_COLUMN = "quality"
TIMING = "bench-timing.json"  # RUN/: CPU and wall seconds of the run, for a resumed bench's figures

WEIGHTINGS: dict[str, dict[str, float]] = {
    "uniform": dict.fromkeys(DOMAINS, 0.2),
    "web": {"web": 0.6, "books": 0.1, "wiki": 0.1, "news": 0.1, "code": 0.1},
    "prose": {"web": 0.1, "books": 0.35, "wiki": 0.35, "news": 0.1, "code": 0.1},
    "code": {"web": 0.1, "books": 0.1, "wiki": 0.1, "news": 0.1, "code": 0.6},
}
KEEPS = (1.0, 0.3, 0.1)


@dataclass(frozen=True)
class ModelSize:
    """A model shape (ModelConfig overrides of the ``tiny`` preset, no new preset) and its peak lr."""

    d_model: int
    n_layers: int
    n_heads: int
    lr: float

    @property
    def label(self) -> str:
        return f"d{self.d_model}-l{self.n_layers}-h{self.n_heads}-lr{self.lr:g}"

    def overrides(self) -> dict[str, int]:
        return {"d_model": self.d_model, "n_layers": self.n_layers, "n_heads": self.n_heads}

    def parameters(self, vocab_size: int) -> dict[str, int]:
        """Non-embedding parameters (the presets' convention) and the total with embedding and head."""
        import torch

        from trainer.model import TransformerLM, count_parameters, model_config

        with torch.device("meta"):
            model = TransformerLM(model_config("tiny", vocab_size, **self.overrides()))
        return {"non_embedding": count_parameters(model), "total": count_parameters(model, embeddings=True)}


SMALL = ModelSize(48, 2, 4, 1e-2)  # the proxy of `curate bench mixing` (ProxyConfig): 105k with a 512 vocab
LARGE = ModelSize(128, 6, 4, 3e-3)  # 1.31M (1.18M without embeddings): 12.5x (21x), ~the `tiny` preset


def parse_size(text: str, lr: float) -> ModelSize:
    """``--large-size 128x6x4`` (d_model x layers x heads) as a ModelSize, or one ConfigError line."""
    try:
        d_model, n_layers, n_heads = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(
            f"model size {text!r}: expected DxLxH, e.g. 128x6x4 (width x layers x heads)"
        ) from None
    if min(d_model, n_layers, n_heads) <= 0 or d_model % n_heads or (d_model // n_heads) % 2:
        raise ConfigError(f"model size {text!r}: width must split into heads of an even size, e.g. 128x6x4")
    return ModelSize(d_model, n_layers, n_heads, lr)


@dataclass(frozen=True)
class Mixture:
    """Domain weights and the share of each domain kept by quality score (1.0: no threshold)."""

    weighting: str
    keep: float

    @property
    def name(self) -> str:
        return f"{self.weighting}-keep{round(self.keep * 100)}"

    @property
    def weights(self) -> dict[str, float]:
        return WEIGHTINGS[self.weighting]


def mixture_catalog() -> list[Mixture]:
    """Every weighting x keep share; the first six (uniform, web, prose x keep 100%, 30%) are the default,
    so a default run varies both decisions."""
    first = [Mixture(w, k) for w in ("uniform", "web", "prose") for k in KEEPS[:2]]
    rest = [Mixture(w, k) for w, k in itertools.product(WEIGHTINGS, KEEPS) if Mixture(w, k) not in first]
    return first + rest


@dataclass(frozen=True)
class FidelitySettings:
    """Sizes of the bench; the defaults took ~20 CPU-minutes on one core (see BENCHMARKS.md)."""

    mixtures: int = 6
    small_tokens: int = 20_480
    scale: int = 10
    seeds: tuple[int, ...] = (0, 1, 2)
    small: ModelSize = SMALL
    large: ModelSize = LARGE
    batch_size: int = 8
    seq_len: int = 64
    vocab_size: int = 512
    docs_per_domain: int = 300
    max_chars: int = 4000
    eval_tokens: int = 16_000
    threads: int = 1
    models: FilterModels = field(default_factory=FilterModels)

    @property
    def large_tokens(self) -> int:
        return self.small_tokens * self.scale

    def check(self) -> None:
        """Every user error as one line, before the corpus is built."""
        if not 2 <= self.mixtures <= len(mixture_catalog()):
            raise ConfigError(f"--mixtures {self.mixtures}: choose 2 to {len(mixture_catalog())}")
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise ConfigError(f"--seeds {list(self.seeds)}: give at least one seed, each once")
        if min(self.small.lr, self.large.lr) <= 0:
            raise ConfigError(f"--small-lr {self.small.lr:g} / --large-lr {self.large.lr:g}: must be > 0")
        if self.scale < 1 or self.small_tokens < self.batch_size * self.seq_len:
            raise ConfigError(
                f"--small-tokens {self.small_tokens} / --scale {self.scale}: need at least one batch "
                f"({self.batch_size * self.seq_len} tokens) and a scale >= 1"
            )


# -------------------------------------------------------------------------------- corpus and mixtures


def domain_documents(shared: Path, docs_per_domain: int, max_chars: int) -> dict[str, list[dict[str, str]]]:
    """Up to ``docs_per_domain`` {id, text} per domain: the filtering bench's web pool (general crawl and
    DCLM pool documents, spread evenly), and the package/shared text of the mixing bench for the rest."""
    web = pool_documents(shared, docs_per_domain)
    documents = {"web": [{"id": d["id"], "text": d["text"][:max_chars]} for d in web]}
    for domain in DOMAINS[1:]:
        texts = domain_texts(domain, docs_per_domain, max_chars)
        documents[domain] = [{"id": f"{domain}/{i}", "text": t} for i, t in enumerate(texts)]
    return documents


def build_corpus(out: Path, settings: FidelitySettings, workers: int = 1) -> Path:
    """The scored corpus (annotated, nothing dropped), cached under OUT/corpus-KEY by what decides it."""
    from curate.jsonl_files import write_jsonl
    from curate.textsources import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        raise ConfigError("bench proxy-fidelity needs ../shared/data (or CURATE_SHARED_DATA pointing at it)")
    key = _key([DOMAINS, settings.docs_per_domain, settings.max_chars])
    folder = out / f"corpus-{key}"
    shards = {domain: folder / "shards" / f"{domain}.jsonl.gz" for domain in DOMAINS}
    if not all(path.exists() for path in shards.values()):
        (folder / "shards").mkdir(parents=True, exist_ok=True)
        for domain, docs in domain_documents(shared, settings.docs_per_domain, settings.max_chars).items():
            write_jsonl(shards[domain], docs)
    ensure_filter_models(settings.models)
    curate_pool(shards, folder, workers, settings.models)
    return folder / "corpus"


def domain_thresholds(corpus: Path, keep: float) -> dict[str, float]:
    """Per domain, the quality score above which its top ``keep`` share of documents lies."""
    return {
        domain: quality_threshold(
            corpus_rows(corpus, domain, ("id", SCORE_COLUMN)).column(SCORE_COLUMN).to_numpy(), keep
        )
        for domain in DOMAINS
    }


def mixture_spec(
    mixture: Mixture, corpus: Path, tokenizer: Path, thresholds: dict[str, float], settings: FidelitySettings
) -> dict[str, Any]:
    """What ``curate mix`` would read: the weights, each domain's quality threshold, one budget (the large
    model's tokens, so it sees as few repeats as the corpus allows) and the evaluation suite."""
    domains = {
        name: {"weight": weight}
        | ({"where": f"{SCORE_COLUMN} >= {thresholds[name]!r}"} if mixture.keep < 1 else {})
        for name, weight in mixture.weights.items()
    }
    return {
        "corpora": [str(corpus.resolve())],
        "budget": settings.large_tokens,
        "seed": 0,  # one sample per mixture: seeds vary the training, paired across mixtures and sizes
        "tokenizer": {"path": str(tokenizer.resolve())},
        "max_epochs": MAX_EPOCHS,
        "domains": domains,
        "eval": {"tokens": settings.eval_tokens},
    }


def build_mixtures(
    out: Path, corpus: Path, tokenizer: Path, settings: FidelitySettings
) -> dict[str, dict[str, Any]]:
    """Each mixture's folder (reused when its spec is unchanged) and what it holds."""
    from mixers.sampler import build_mixture
    from mixers.spec import parse_spec

    chosen = mixture_catalog()[: settings.mixtures]
    thresholds = {keep: domain_thresholds(corpus, keep) for keep in {m.keep for m in chosen}}
    built = {}
    for mixture in chosen:
        spec = parse_spec(
            mixture_spec(mixture, corpus, tokenizer, thresholds[mixture.keep], settings),
            where=f"bench proxy-fidelity {mixture.name}",
        )
        folder = out / "mixes" / f"{mixture.name}-{spec.spec_hash()[:12]}"
        manifest_path = folder / "manifest.json"
        if manifest_path.is_file():
            manifest = json.loads(manifest_path.read_text())
        else:
            manifest = build_mixture(spec, folder, tokens=True)
        built[mixture.name] = {
            "path": str(folder),
            "weights": mixture.weights,
            "keep": mixture.keep,
            "thresholds": thresholds[mixture.keep] if mixture.keep < 1 else None,
            "documents": manifest["totals"]["documents"],
            "tokens": manifest["totals"]["achieved_tokens"],
            "eval_suite": manifest["eval_suite"]["hash"],
        }
    return built


# ------------------------------------------------------------------------------------------ training


def train_and_score(
    mix: Path, run_dir: Path, size: ModelSize, tokens: int, seed: int, settings: FidelitySettings
) -> dict[str, Any]:
    """One run through the trainer's own entry point (a finished run in RUN is reused, not retrained);
    returns its suite score, per-domain bits per byte, the suite hash and the CPU seconds it took."""
    from trainer.proxy import SCORE, train_proxy

    timing = run_dir / TIMING
    reused = (run_dir / SCORE).is_file()
    if not reused:
        started, cpu = time.perf_counter(), time.process_time()
        train_proxy(
            mix, run_dir, preset="tiny", precision="fp32", tokens=tokens, seed=seed,
            batch_size=settings.batch_size, seq_len=settings.seq_len, model=size.overrides(), lr=size.lr,
            threads=settings.threads, checkpoint_every=10**9, progress=False, device="cpu",
        )  # fmt: skip
        seconds = {"cpu_seconds": round(time.process_time() - cpu, 1),
                   "wall_seconds": round(time.perf_counter() - started, 1),
                   "load_average_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
        timing.write_text(json.dumps(seconds) + "\n")
    result = json.loads((run_dir / SCORE).read_text())
    return {
        "seed": seed,
        "score": result["score"],
        "bpb": {domain: values["bpb"] for domain, values in result["domains"].items()},
        "tokens_trained": result["tokens_trained"],
        "eval_suite": (result.get("eval_suite") or {}).get("hash"),
        "reused": reused,  # a finished run of an earlier (interrupted) invocation
        **(json.loads(timing.read_text()) if timing.is_file() else {"cpu_seconds": None}),
    }


def train_all(
    out: Path, mixtures: dict[str, dict[str, Any]], settings: FidelitySettings, say: Any
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """runs[size][mixture] = one record per seed, seeds in the same order everywhere (paired)."""
    sizes = {
        "small": (settings.small, settings.small_tokens),
        "large": (settings.large, settings.large_tokens),
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in sizes}
    for size_name, (size, tokens) in sizes.items():  # small runs first, then seed by seed: an interrupted
        for seed in settings.seeds:  # bench leaves whole rankings behind (its cached runs are reused)
            for name, mixture in mixtures.items():
                folder = Path(mixture["path"])
                run_dir = out / "runs" / folder.name / f"{size.label}-t{tokens}-s{seed}"
                record = train_and_score(folder, run_dir, size, tokens, seed, settings)
                runs[size_name].setdefault(name, []).append(record)
                say(f"{size_name} {name} seed {seed}: {record['score']:.4f}")
    return runs


# ------------------------------------------------------------------------------------ rank agreement


def ranking(means: dict[str, float]) -> list[str]:
    """Mixture names best first (lowest bits per byte); ties broken by name, so the order is stable."""
    return sorted(means, key=lambda name: (means[name], name))


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (Pearson's r of RegMix's average ranks, ties shared); nan when either
    side is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(average_ranks(np.asarray(a)), average_ranks(np.asarray(b)))[0, 1])


def pairwise_agreement(a: list[float], b: list[float]) -> float:
    """Share of pairs (i, j) that both score lists order the same way (a tie on one side only disagrees)."""
    pairs = list(itertools.combinations(range(len(a)), 2))
    same = sum(_sign(a[i] - a[j]) == _sign(b[i] - b[j]) for i, j in pairs)
    return same / len(pairs)


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def pair_table(small: dict[str, list[float]], large: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Every mixture pair: each size's mean difference (A - B, per-seed paired), whether the two sizes
    order it alike, and whether the small model's difference is beyond seed noise (paired t-test)."""
    rows = []
    for a, b in itertools.combinations(small, 2):
        small_test = paired_comparison(small[a], small[b], (a, b))
        large_test = paired_comparison(large[a], large[b], (a, b))
        small_diff, large_diff = small_test["difference"]["mean"], large_test["difference"]["mean"]
        rows.append({
            "a": a,
            "b": b,
            "small_difference": small_diff,
            "large_difference": large_diff,
            "agree": _sign(small_diff) == _sign(large_diff),
            "small_p_value": small_test["p_value"],
            "small_significant": _significant(small_test),
            "small_verdict": small_test["verdict"],
            "large_significant": _significant(large_test),  # is the reference itself beyond seed noise?
            "large_verdict": large_test["verdict"],
        })  # fmt: skip
    return rows


def _significant(test: dict[str, Any]) -> bool:
    return test["p_value"] is not None and test["p_value"] < ALPHA


def fidelity(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Both rankings, Spearman, pairwise agreement (all pairs, those the small model separates beyond seed
    noise, and those the large one does: a reference ranking that is itself noise proves nothing)."""
    scores = {size: {name: [r["score"] for r in records] for name, records in by_mix.items()}
              for size, by_mix in runs.items()}  # fmt: skip
    means = {size: {name: mean_and_se(values)[0] for name, values in by_mix.items()}
             for size, by_mix in scores.items()}  # fmt: skip
    names = list(means["small"])
    small, large = [means["small"][n] for n in names], [means["large"][n] for n in names]
    pairs = pair_table(scores["small"], scores["large"])
    return {
        "ranking": {size: ranking(values) for size, values in means.items()},
        "spearman": spearman(small, large),
        "pairwise_agreement": pairwise_agreement(small, large),
        "pairs": len(pairs),
        "pairs_small_significant": sum(p["small_significant"] for p in pairs),
        "agreement_small_significant": _share([p["agree"] for p in pairs if p["small_significant"]]),
        "agreement_small_not_significant": _share([p["agree"] for p in pairs if not p["small_significant"]]),
        "pairs_large_significant": sum(p["large_significant"] for p in pairs),
        "agreement_large_significant": _share([p["agree"] for p in pairs if p["large_significant"]]),
        "pair_table": pairs,
        "means": {
            size: {n: {"mean": m, "se": mean_and_se(scores[size][n])[1]} for n, m in values.items()}
            for size, values in means.items()
        },  # fmt: skip
    }


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


# ------------------------------------------------------------------------------------------ the bench


def bench_proxy_fidelity(
    out: Path = BENCH_DIR, settings: FidelitySettings | None = None, say: Any = None
) -> dict[str, Any]:
    """Build the corpus and mixtures, train both sizes on every mixture and seed, compare their rankings;
    writes OUT/proxy-fidelity.json and returns the figures."""
    settings = settings or FidelitySettings()
    settings.check()
    say = say or (lambda message: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started, cpu, load_before = time.perf_counter(), time.process_time(), os.getloadavg()
    corpus = build_corpus(out, settings)
    texts = [t for d in DOMAINS for t in corpus_rows(corpus, d, ("id", "text")).column("text").to_pylist()]
    tokenizer = pool_tokenizer(texts, settings.vocab_size, out / "tokenizers")
    mixtures = build_mixtures(out, corpus, tokenizer, settings)
    say(f"corpus and {len(mixtures)} mixtures ready after {time.perf_counter() - started:.0f} s")
    runs = train_all(out, mixtures, settings, say)
    suites = one_suite(runs)
    figures = {
        "settings": _settings_json(settings),
        "parameters": {
            "small": settings.small.parameters(settings.vocab_size),
            "large": settings.large.parameters(settings.vocab_size),
        },
        "tokens": {"small": settings.small_tokens, "large": settings.large_tokens},
        "corpus": str(corpus),
        "tokenizer": str(tokenizer),
        "eval_suites": suites,
        "mixtures": mixtures,
        **fidelity(runs),
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "train_cpu_seconds": {size: train_cpu(by_mix) for size, by_mix in runs.items()},
        "load_average": {
            "start": [round(x, 2) for x in load_before],
            "end": [round(x, 2) for x in os.getloadavg()],
        },  # fmt: skip
        "machine": machine(),
    }
    (out / "proxy-fidelity.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def one_suite(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """The one evaluation suite every run was scored on; scores on different documents rank nothing."""
    suites = {r["eval_suite"] for by_mix in runs.values() for records in by_mix.values() for r in records}
    if len(suites) != 1 or None in suites:
        shown = ", ".join(str(s)[:12] for s in sorted(suites, key=str))
        raise ConfigError(
            f"runs were scored on different evaluation suites ({shown}); delete OUT/mixes and rerun"
        )
    return sorted(suites)


def train_cpu(by_mixture: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """CPU seconds of one size's runs (those timed: runs of an interrupted bench before timings were
    kept have none), so a resumed bench still reports what its runs cost."""
    timed = [r["cpu_seconds"] for records in by_mixture.values() for r in records if r["cpu_seconds"]]
    runs = sum(len(records) for records in by_mixture.values())
    return {"total": round(sum(timed), 1), "runs_timed": len(timed), "runs": runs}


def _settings_json(settings: FidelitySettings) -> dict[str, Any]:
    record = asdict(settings)
    record["models"] = {"lm": settings.models.lm, "quality": settings.models.quality}
    record["large_tokens"] = settings.large_tokens
    return record


def _key(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def format_table(figures: dict[str, Any]) -> str:
    """Both rankings side by side, then the agreement figures and the pairs the sizes order differently."""
    means, rank = figures["means"], figures["ranking"]
    params, tokens = figures["parameters"], figures["tokens"]
    lines = [
        f"small: {params['small']['total']:,} parameters ({params['small']['non_embedding']:,} without "
        f"embeddings), {tokens['small']:,} tokens; large: {params['large']['total']:,} "
        f"({params['large']['non_embedding']:,}), {tokens['large']:,} tokens; "
        f"seeds {figures['settings']['seeds']}; {figures['pairs']} mixture pairs",
        f"{'mixture':<18}{'small bpb':>11}{'+- SE':>8}{'rank':>6}{'large bpb':>12}{'+- SE':>8}{'rank':>6}",
    ]
    for name in rank["large"]:
        s, g = means["small"][name], means["large"][name]
        lines.append(
            f"{name:<18}{s['mean']:>11.4f}{s['se']:>8.4f}{rank['small'].index(name) + 1:>6}"
            f"{g['mean']:>12.4f}{g['se']:>8.4f}{rank['large'].index(name) + 1:>6}"
        )
    lines.append(
        f"Spearman {figures['spearman']:.3f}; pairwise agreement {figures['pairwise_agreement']:.1%} "
        f"(DataDecide: ~80% between 150M and 1B)"
    )
    lines += [
        f"{size} model's difference significant (p < {ALPHA}) in {figures[f'pairs_{size}_significant']} of "
        f"{figures['pairs']} pairs; agreement there {_percent(figures[f'agreement_{size}_significant'])}"
        for size in ("small", "large")
    ]
    lines += [
        f"  disagree: {p['a']} vs {p['b']}: small {p['small_difference']:+.4f} ({p['small_verdict']}), "
        f"large {p['large_difference']:+.4f}"
        for p in figures["pair_table"]
        if not p["agree"]
    ]
    lines += [
        f"training CPU, {size}: {cost['total']:.0f} s over {cost['runs_timed']} of {cost['runs']} runs timed"
        for size, cost in figures["train_cpu_seconds"].items()
    ]
    lines.append(
        f"{figures['seconds']:.0f} s wall, {figures['cpu_seconds']:.0f} s CPU, load average "
        f"{figures['load_average']['start'][0]} -> {figures['load_average']['end'][0]}"
    )
    return "\n".join(lines)
