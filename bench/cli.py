"""`curate bench ...`: every benchmark's command. Each prints JSON figures (see BENCHMARKS.md).

The benchmarks sit above the product (nothing in the product imports them); the `curate` CLI root adds
this app as its `bench` group. User errors (ConfigError) are printed as one line by the root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trainer.choices import MetadataField, Size

bench_app = typer.Typer(help="Benchmarks that print JSON figures (see BENCHMARKS.md).", no_args_is_help=True)
Parallel = Annotated[bool, typer.Option("--ray/--sequential", help="proxy runs as parallel Ray tasks")]


@bench_app.command("pipeline")
def bench_pipeline(
    mb: Annotated[int, typer.Option(min=1, help="megabytes of real text to assemble")] = 100,
    workers: Annotated[int, typer.Option(min=1)] = 2,
    executors: Annotated[str, typer.Option(help="comma-separated: local,ray")] = "local,ray",
    shard_mb: Annotated[int, typer.Option(min=1, help="size of each input shard")] = 8,
) -> None:
    """read + normalize + tag + write throughput (docs/s, MB/s per core, peak RSS) on real text."""
    from bench.pipeline import bench_pipeline as run_bench

    figures = run_bench(mb, workers, executors.split(","), shard_mb)
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("minhash")
def bench_minhash(
    repeats: Annotated[int, typer.Option(min=1, help="timed repeats of ours and rensa")] = 3,
) -> None:
    """MinHash signatures (shingling included), one core: ours vs rensa vs datasketch on >= 20 MB."""
    from bench.minhash import bench_minhash as run_bench

    typer.echo(json.dumps(run_bench(repeats=repeats), indent=2))


@bench_app.command("dedup")
def bench_dedup(
    input_paths: Annotated[
        list[str] | None, typer.Option("--input", help="JSONL shard, glob or folder (repeatable)")
    ] = None,
    docs: Annotated[
        list[int] | None, typer.Option(help="generated corpus sizes when no --input (repeatable)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1)] = 2,
    peer_docs: Annotated[int, typer.Option(min=0, help="documents given to the peers end to end")] = 5_000,
    json_output: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    global_phase: Annotated[
        bool,
        typer.Option(
            "--global-phase",
            help="time only the global dedup phase at each --docs size, on sketches built once and cached",
        ),
    ] = False,
) -> None:
    """Dedup: signature MB/s per core, end-to-end docs/s and peak RSS (per million documents) of a real
    normalize + dedup run, with datasketch / rensa / DataTrove as ratios when installed. With
    --global-phase: global_s_per_million and peak RSS of the global phase alone at each size."""
    if global_phase:
        from bench.dedup_global import bench_global_phase, format_global_report

        figures = bench_global_phase(docs or [1_000_000], workers)
        typer.echo(json.dumps(figures, indent=2) if json_output else format_global_report(figures))
        return
    from bench.dedup_scale import bench_dedup as run_bench
    from bench.dedup_scale import format_report

    result = run_bench(input_paths or None, docs or [100_000], workers, peer_docs)
    typer.echo(json.dumps(result, indent=2) if json_output else format_report(result))


@bench_app.command("capacity")
def bench_capacity(
    docs: Annotated[
        list[int] | None,
        typer.Option(help="generated corpus sizes (repeatable; default 25000, 50000, 100000)"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1)] = 2,
    crawl_docs: Annotated[float, typer.Option(min=1, help="documents of the crawl to size")] = 3e9,
    hours: Annotated[float, typer.Option(min=0.1, help="turnaround the crawl must fit in")] = 24.0,
    node_cores: Annotated[int, typer.Option(min=1, help="cores per node")] = 64,
    node_memory_gib: Annotated[float, typer.Option(min=1, help="memory per node, GiB")] = 256.0,
) -> None:
    """Capacity model: per-phase costs of a real crawl pipeline at three sizes, predicted vs measured,
    and the core-hours, bytes shuffled and nodes for a crawl of --crawl-docs documents in --hours."""
    from bench.capacity import DEFAULT_DOCS, CrawlShape
    from bench.capacity import bench_capacity as run_bench

    crawl = CrawlShape(docs=crawl_docs, hours=hours, node_cores=node_cores, node_memory_gib=node_memory_gib)
    typer.echo(json.dumps(run_bench(docs or list(DEFAULT_DOCS), workers, crawl), indent=2))


@bench_app.command("dedup-quality")
def bench_dedup_quality(
    originals: Annotated[int, typer.Option(min=50, help="real documents before edited copies")] = 6000,
    shards: Annotated[int, typer.Option(min=1)] = 8,
    seed: int = 0,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    bands: Annotated[int | None, typer.Option(help="override dedup.bands")] = None,
) -> None:
    """Dedup pair precision/recall vs exact 5-gram Jaccard at 0.7 and 0.8, verify=signature and exact."""
    from bench.dedup_quality import bench_dedup_quality as run_bench

    figures = run_bench(
        originals=originals, shards=shards, seed=seed, workers=workers,
        dedup={"bands": bands} if bands else None,
    )  # fmt: skip
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("filters")
def bench_filters(
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input",
            exists=True,
            help="a JSONL shard (.jsonl/.json/.ndjson, plain, gzip or zstd) or a folder of them "
            "(default: the real-text corpus of `curate bench pipeline`, built from ../shared/data)",
        ),
    ] = None,
    mb: Annotated[
        float, typer.Option(min=0.1, help="MB of text measured: the corpus built, or a prefix of --input")
    ] = 100.0,
    json_output: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    peer_docs: Annotated[
        int, typer.Option(min=0, help="evenly spaced documents given to DataTrove (~50 docs/s); 0 = all")
    ] = 2000,
) -> None:
    """Docs/s and MB/s per core (CPU time, one thread) of each filter stage and of the whole annotate
    chain, beside DataTrove's FineWeb chain on the same documents when datatrove is installed."""
    from bench.filter_stages import bench_filters as run_bench
    from bench.filter_stages import format_table

    figures = run_bench(input_path, mb=mb, peer_docs=peer_docs or None, log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(figures, indent=2) if json_output else format_table(figures))


@bench_app.command("extract")
def bench_extract(
    repeats: Annotated[int, typer.Option(min=1, help="timed passes over each input (median kept)")] = 3,
    json_output: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """WARC HTML extractors (resiliparse, trafilatura): bag-of-words F1 against hand-checked main text on
    ten real pages, and MB of HTML per CPU-second (one core) on the real WARC files and those pages."""
    from bench.extract import bench_extract as run_bench
    from bench.extract import format_report

    figures = run_bench(repeats=repeats)
    typer.echo(json.dumps(figures, indent=2) if json_output else format_report(figures))


@bench_app.command("api")
def bench_api(
    clients: Annotated[int, typer.Option(min=1)] = 50,
    seconds: Annotated[float, typer.Option(min=1, help="length of each phase")] = 30.0,
    rate: Annotated[float, typer.Option(min=0.01, help="polls per second per client, paced phase")] = 1.0,
) -> None:
    """Status polling while a job runs: paced clients (p50/p99 latency, errors), then saturation
    (requests/s and the server's CPU per request, so requests/s per core) (JSON)."""
    from bench.api_load import bench_api as run_bench

    typer.echo(json.dumps(run_bench(clients, seconds, rate), indent=2))


@bench_app.command("rules")
def bench_rules(
    mb: Annotated[float, typer.Option(min=0.1, help="megabytes of real documents")] = 4.0,
    repeats: Annotated[int, typer.Option(min=1)] = 3,
    peer_docs: Annotated[int | None, typer.Option(help="cap on documents given to DataTrove (slow)")] = None,
) -> None:
    """The heuristic rule chain vs DataTrove's FineWeb chain (Gopher + C4 + FineWeb), one core, CPU time."""
    from bench.rule_chain import bench_rules as run_bench
    from bench.rule_chain import build_corpus

    texts = build_corpus(max_mb=mb)
    typer.echo(json.dumps(run_bench(texts, repeats=repeats, datatrove_max_docs=peer_docs), indent=2))


@bench_app.command("fuzz")
def bench_fuzz(
    cases: Annotated[int, typer.Option(min=1, help="mutated shards to put through `curate run`")] = 2000,
    seed: Annotated[int, typer.Option(help="seed of the mutations")] = 0,
) -> None:
    """Mutated real shards of every format through `curate run`: tracebacks, hangs, unaccounted files."""
    from bench.fuzz_inputs import fuzz

    figures = fuzz(cases, seed)
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("memory")
def bench_memory(
    mb: Annotated[
        list[float] | None, typer.Option(help="document sizes, millions of characters (repeatable)")
    ] = None,
    unit: Annotated[list[str] | None, typer.Option(help="stages / dedup units (default: all)")] = None,
    run: Annotated[bool, typer.Option(help="also measure a whole `curate run` per size")] = True,
) -> None:
    """Peak RSS that one huge real document costs each stage, the dedup units and a whole run."""
    from bench.doc_memory import DEFAULT_SIZES_MB
    from bench.doc_memory import bench_memory as run_bench

    figures = run_bench(mb or list(DEFAULT_SIZES_MB), unit or None, run)
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("train")
def bench_train(
    out: Path = Path(".cache/bench/train"),
    token_dir: Annotated[
        Path | None, typer.Option(help="token shards (default: built from package text)")
    ] = None,
    size: Size = "tiny",
    tokens: Annotated[int, typer.Option(min=1)] = 2_000_000,
    threads: Annotated[int | None, typer.Option(min=1)] = None,
    compile: Annotated[bool, typer.Option("--compile")] = False,
) -> None:
    """tokens/s per recipe, nvfp4 step time vs bf16, final eval loss, and fp32 vs a bare PyTorch loop."""
    from bench.train_speed import bench_train as run_bench

    figures = run_bench(out, token_dir, size, tokens=tokens, threads=threads, compile=compile)  # type: ignore[arg-type]
    typer.echo(json.dumps(figures, indent=2, default=str))


def _seeds(seeds: str) -> tuple[int, ...]:
    from curate.errors import ConfigError

    try:
        return tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 0,1,2") from None


@bench_app.command("meco")
def bench_meco(
    out: Path = Path(".cache/bench/meco"),
    tokens: Annotated[int, typer.Option(min=10_000, help="tokens of the plain and full MeCo arms")] = 300_000,
    seeds: Annotated[str, typer.Option(help="comma-separated seeds (paired across arms)")] = "0,1,2",
    field: Annotated[MetadataField, typer.Option(help="metadata to prepend")] = "site",
    cooldown: Annotated[float, typer.Option(min=0, max=0.99)] = 0.1,
    size: Size = "tiny",
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads")] = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="keep earlier runs in --out (finished ones are only re-scored)")
    ] = False,
) -> None:
    """Metadata conditioning then cooldown vs plain training on real text: held-out bits per byte at equal
    tokens and at 2/3 of them (paired seeds), scoring a site's documents with the right/wrong site, and
    text sampled after each site's prefix (does it read like that site?)."""
    from bench.meco import bench_meco as run_bench

    figures = run_bench(out, tokens, _seeds(seeds), field, cooldown, size, threads, resume=resume)  # type: ignore[arg-type]
    typer.echo(json.dumps(figures, indent=2, default=str))


@bench_app.command("osp")
def bench_osp(
    out: Path = Path(".cache/bench/osp"),
    tokens: Annotated[int, typer.Option(min=10_000, help="tokens each run trains on")] = 300_000,
    seeds: Annotated[str, typer.Option(help="comma-separated seeds (paired across recipes)")] = "0,1,2",
    size: Size = "tiny",
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads")] = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="keep earlier runs in --out (finished ones are only re-scored)")
    ] = False,
) -> None:
    """Standard vs outlier-safe (osp) recipe, paired seeds: trained in bf16, residual-stream kurtosis and the
    eval-loss gap of the trained weights under NVFP4 (every block) vs bf16; trained in NVFP4 (every
    block), the eval-loss gap to the bf16-trained run, osp vs standard."""
    from bench.osp import bench_osp as run_bench

    figures = run_bench(out, tokens, _seeds(seeds), size, threads, resume=resume)
    typer.echo(json.dumps(figures, indent=2, default=str))


@bench_app.command("filtering")
def bench_filtering(
    out: Path = Path(".cache/bench/filtering"),
    tokens: Annotated[int, typer.Option(min=1, help="tokens each arm trains on")] = 1_000_000,
    seeds: Annotated[str, typer.Option(help="comma-separated seeds (mixture sample + model init)")] = "0,1,2",
    keep: Annotated[float, typer.Option(help="share of pool documents the quality filter keeps")] = 0.4,
    size: Size = "tiny",
    precision: Annotated[str, typer.Option(help="fp32, bf16, fp8 or nvfp4")] = "fp32",
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads per run")] = 1,
    max_docs: Annotated[
        int | None, typer.Option(min=10, help="read only this many web documents (quick runs)")
    ] = None,
    eval_chars: Annotated[int, typer.Option(min=1000, help="characters per evaluation set")] = 300_000,
    json_output: Annotated[bool, typer.Option("--json", help="print every figure as JSON")] = False,
) -> None:
    """Quality-filtered vs unfiltered web mixture at equal tokens: proxy bits per byte on held-out
    Wikipedia, books and web text (the pool is real web text from ../shared/data)."""
    from bench.filtering import bench_filtering as run_bench
    from bench.filtering import format_table
    from curate.errors import ConfigError

    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 0,1,2") from None
    figures = run_bench(out, tokens, seed_list, keep, size, precision, threads=threads,  # type: ignore[arg-type]
                        max_docs=max_docs, eval_chars=eval_chars)  # fmt: skip
    typer.echo(json.dumps(figures, indent=2, default=str) if json_output else format_table(figures))


@bench_app.command("mix")
def bench_mix(
    mb: Annotated[int, typer.Option(min=1, help="corpus size on disk (Parquet MB) to mix from")] = 1024,
    workers: Annotated[int, typer.Option(min=1, help="workers for building the corpus (cached)")] = 2,
    exact: Annotated[
        bool, typer.Option("--exact/--no-exact", help="also time exact token counting (slow, cached)")
    ] = False,
) -> None:
    """MB/s to build a mixture from a curated corpus of at least --mb MB on disk (built once, cached)."""
    from bench.mix_build import bench_mix as run_bench

    typer.echo(json.dumps(run_bench(mb, workers=workers, exact=exact), indent=2))


@bench_app.command("mixing")
def bench_mixing(
    out: Annotated[Path, typer.Option(help="folder for bench-mixing.json/.md/.png and the agent")] = Path(
        ".cache/bench/mixing"
    ),
    seed: int = 0,
    setting: Annotated[
        str,
        typer.Option(
            help="standard: search, continual, unseen target; target-small: a small target domain, "
            "RegMix and the agent vs uniform and natural on 5 fresh paired seeds"
        ),
    ] = "standard",
    quick: Annotated[bool, typer.Option("--quick", help="a one-minute smoke run of the same code")] = False,
    parallel: Parallel = False,
) -> None:
    """Every strategy at equal proxy compute, scored on the corpus's fixed evaluation suite."""
    from bench.mixing import BenchSettings, bench_target_small
    from bench.mixing import bench_mixing as run_bench

    settings = BenchSettings.named(setting, quick)
    run = bench_target_small if setting == "target-small" else run_bench
    figures = run(out, seed, settings, parallel)
    typer.echo(json.dumps(figures["results"], indent=2))


@bench_app.command("critical-ratio")
def bench_critical_ratio(
    out: Annotated[Path, typer.Option(help="folder for bench-critical-ratio.json")] = Path(
        ".cache/bench/critical-ratio"
    ),
    domain: Annotated[str | None, typer.Option(help="the new domain (default math, else code)")] = None,
    budget: Annotated[
        list[int] | None, typer.Option(help="proxy steps of the continual runs; repeat (default 40 120 360)")
    ] = None,
    tolerance: Annotated[float, typer.Option(help="allowed relative rise of the general loss")] = 0.01,
    seeds: Annotated[int, typer.Option(min=1, help="paired seeds (a base model each)")] = 3,
    base_steps: Annotated[int, typer.Option(min=1, help="proxy steps of each base model")] = 200,
    parallel: Parallel = False,
) -> None:
    """Critical mixture ratio of continual pretraining on a domain, at several budgets, with its fit."""
    from bench.critical_ratio import bench_critical_ratio as run_bench
    from mixers.strategies.critical_ratio import format_report

    budgets = tuple(budget) if budget else (40, 120, 360)
    figures = run_bench(out, domain, budgets, tolerance, seeds, base_steps, parallel=parallel)
    typer.echo(format_report(figures))


@bench_app.command("proxy-fidelity")
def bench_proxy_fidelity(
    out: Annotated[Path, typer.Option(help="cache folder (corpus, mixtures, runs) and the JSON")] = Path(
        ".cache/bench/proxy-fidelity"
    ),
    mixtures: Annotated[int, typer.Option(min=2, help="mixtures to rank (weights x quality keep share)")] = 6,
    small_tokens: Annotated[int, typer.Option(min=1, help="tokens the small proxy trains on")] = 20_480,
    scale: Annotated[
        int, typer.Option(min=1, help="the large model trains on this many times the tokens")
    ] = 10,
    seeds: Annotated[
        str, typer.Option(help="comma-separated seeds, shared by every mixture and size")
    ] = "0,1,2",
    small_size: Annotated[str, typer.Option(help="small proxy, width x layers x heads")] = "48x2x4",
    large_size: Annotated[str, typer.Option(help="large model, width x layers x heads")] = "128x6x4",
    small_lr: Annotated[float, typer.Option(min=0.0)] = 1e-2,
    large_lr: Annotated[float, typer.Option(min=0.0)] = 3e-3,
    json_output: Annotated[bool, typer.Option("--json", help="print every figure as JSON")] = False,
) -> None:
    """Do the ~105k-parameter proxy and a >= 10x larger model (on 10x the tokens) rank mixtures alike?
    Both rankings on the mixtures' shared evaluation suite, Spearman, pairwise agreement, and per pair
    whether the small model's difference is beyond seed noise (needs ../shared/data)."""
    from bench.proxy_fidelity import FidelitySettings, format_table, parse_size
    from bench.proxy_fidelity import bench_proxy_fidelity as run_bench
    from curate.errors import ConfigError

    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 0,1,2") from None
    settings = FidelitySettings(
        mixtures=mixtures, small_tokens=small_tokens, scale=scale, seeds=seed_list,
        small=parse_size(small_size, small_lr), large=parse_size(large_size, large_lr),
    )  # fmt: skip
    figures = run_bench(out, settings, say=lambda line: typer.echo(line, err=True))
    typer.echo(json.dumps(figures, indent=2, default=str) if json_output else format_table(figures))
