"""Build a mixture: validate, count tokens, select per domain in DuckDB, write shuffled Parquet parts.

The corpus never enters Python memory. DuckDB scans the Parquet parts (only the columns a query names),
the selection is a small table of (file, row, epoch) keys, and the final shuffled rows stream out of
DuckDB in Arrow batches straight into the part writer.

Determinism: every order is a total order on seeded md5 hashes of document ids with (file, row, epoch)
tie-breaks, never `random()` or scan order, so one seed gives the same rows in the same order on any
thread count, and the writer turns them into the same bytes.

Before any sampling, the evaluation suite (mixers.suite) is chosen at the corpus level and, with every
near-duplicate of its documents, removed from the candidates: no mixture trains on what it is scored on.

Per domain: documents are ranked by md5(seed:epoch:id) within each epoch, epochs follow one another, and
documents are taken in that order while they fit: the domain's tokens stay within `slack` of its target
(slack = share_tolerance x budget / active domains, which keeps every achieved share within
share_tolerance of its request). A document that would overshoot by more is skipped, not truncated, and
later (shorter) ones fill the rest, so one 73k-token file cannot triple a 40k-token share; only when no
remaining document fits is the shortest one taken, so a domain always reaches its target. A domain reaches
its target without replacement when it can; otherwise it repeats (each epoch in a new order) up to its
`max_epochs`, with a warning; a share that still misses its tolerance is a warning and a manifest record.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from curate.checksums import file_sha256
from curate.manifest import code_version
from curate.storage import is_url, register_filesystems
from mixers.corpus import CorpusSet, PartFile, open_corpora
from mixers.db import connect
from mixers.errors import MixError, warn
from mixers.output import (
    MIX_KIND,
    MIX_MANIFEST,
    MixWriter,
    check_output,
    commit,
    staging_dir,
    write_json,
)
from mixers.predicates import Predicate, check_predicate, compile_predicate, parse_predicate, quote_identifier
from mixers.shards import write_tokens
from mixers.spec import MixtureSpec, domain_targets, load_spec
from mixers.suite import (
    SUITE_DIR,
    SuiteDomain,
    check_targets,
    exclude_near_duplicates,
    select_suite,
    warn_short_domains,
    write_suite,
)
from mixers.tokens import TokenCounter, count_parts, estimate_sql, make_counter, missing_counts, sidecar_path

ADDED_COLUMNS = {"epoch": pa.int32(), "n_tokens": pa.int64()}
DUCKDB_MEMORY = os.environ.get("CURATE_MIX_MEMORY", "2GB")
OUTPUT_BATCH = 4096
Echo = Callable[[str], None]


@dataclass
class DomainPlan:
    name: str
    requested: int
    max_epochs: float
    predicate: Predicate
    weight: float | None
    docs: int = 0
    tokens: int = 0


@dataclass
class MixPlan:
    """Everything decided before a document is read: the checks of a spec against its corpora."""

    spec: MixtureSpec
    out: Path
    corpora: CorpusSet
    counter: TokenCounter
    domains: dict[str, DomainPlan]
    write_tokens: bool
    targets: dict[str, list[Path]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def active(self) -> list[DomainPlan]:
        return [d for d in self.domains.values() if d.requested > 0]

    @property
    def has_suite(self) -> bool:
        return self.spec.eval.tokens > 0 or bool(self.targets)

    def slack(self) -> int:
        """Tokens a domain may exceed its target by: |share error| <= tolerance for every domain."""
        active = self.active()
        total = sum(d.requested for d in active)
        return math.floor(self.spec.share_tolerance * total / len(active)) if active else 0

    def parts(self) -> list[PartFile]:
        return self.corpora.parts_for({d.name for d in self.active()})


def plan_mixture(
    spec: MixtureSpec, out: Path | str | None, tokens: bool = False, strict: bool = False
) -> MixPlan:
    """All user errors, found from the spec, the corpora's manifests and Parquet footers only."""
    target = out if out is not None else spec.output
    if target is not None and is_url(str(target)):
        raise MixError(
            f"--out {target}: a mixture is written to a local folder (its corpora may be on s3://)"
        )
    out_path = Path(target) if target is not None else None
    if out_path is None:
        raise MixError("no output folder: set `output:` in the spec or pass --out MIX")
    corpora = open_corpora(spec.corpora)
    _check_domains(spec, corpora)
    notes: list[str] = []
    shared = check_predicate(parse_predicate(spec.where, "where"), corpora.schema, "where")
    targets = domain_targets(spec, strict, notes)
    weights = _shares(spec)
    domains = {
        name: DomainPlan(
            name,
            targets[name],
            spec.domain_epochs(name),
            shared & _domain_predicate(spec, name, corpora),
            weights.get(name),
        )
        for name in spec.domains
    }
    counter = make_counter(spec.tokenizer)
    if tokens and counter.mode != "exact":
        raise MixError("--tokens needs a tokenizer: set `tokenizer: {path: ...}` in the spec")
    check_output(out_path, corpora.roots)
    targets = check_targets(spec.eval, corpora.domains())
    return MixPlan(spec, out_path, corpora, counter, domains, tokens, targets, notes)


def preflight_mixture(
    spec: MixtureSpec, out: Path | str | None, tokens: bool = False, strict: bool = False
) -> MixPlan:
    """plan_mixture plus the budget check, without tokenizing or writing anything (for job submission).

    Exact and cached counts, or the estimate, give the real check; uncounted parts of an exact spec get
    the byte bound (tokens <= UTF-8 bytes + 1), so a budget that passes here can still fail in the build.
    """
    plan = plan_mixture(spec, out, tokens, strict)
    with tempfile.TemporaryDirectory(prefix="curate-mix-") as tmp, _connect(Path(tmp)) as con:
        Session(con, plan, lambda message: None, Phases(None)).preflight()
    return plan


def _check_domains(spec: MixtureSpec, corpora: CorpusSet) -> None:
    known = corpora.domains()
    unknown = [name for name in spec.domains if name not in known]
    if unknown:
        raise MixError(f"domains: unknown domain {unknown[0]!r}; the corpora hold: {', '.join(known)}")


def _domain_predicate(spec: MixtureSpec, name: str, corpora: CorpusSet) -> Predicate:
    where = f"domains.{name}.where"
    return check_predicate(parse_predicate(spec.domains[name].where, where), corpora.schema, where)


def _shares(spec: MixtureSpec) -> dict[str, float]:
    weights = {k: d.weight for k, d in spec.domains.items() if d.weight is not None}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()} if total else {}


def build_mixture(
    spec: MixtureSpec,
    out: Path | str | None = None,
    tokens: bool = False,
    strict: bool = False,
    echo: Echo | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Check, sample, write MIX/part-*.parquet, MIX/manifest.json (and MIX/tokens/); returns the manifest.

    `timings`, when given, receives seconds per phase (plan, count, select, write, tokens); they stay out
    of the manifest, which must be byte-identical between two builds.
    """
    clock = Phases(timings)
    with clock("plan"):
        plan = plan_mixture(spec, out, tokens, strict)
    say = echo or (lambda message: None)
    staging = staging_dir(plan.out)
    try:
        with _connect(staging) as con:
            session = Session(con, plan, say, clock)
            session.prepare()
            with clock("write"):
                manifest = session.write(staging)
        if plan.write_tokens:
            with clock("tokens"):
                manifest["token_shards"] = write_tokens(plan, staging, manifest, say)
        write_json(staging / MIX_MANIFEST, manifest)
        _remove_tree(staging / "_duckdb")
        commit(staging, plan.out)
    except duckdb.OutOfMemoryException:
        _remove_tree(staging)
        raise MixError(
            f"the mixture's shuffle needs more than DuckDB's memory limit ({DUCKDB_MEMORY}); "
            "set CURATE_MIX_MEMORY to a larger limit, e.g. 4GB"
        ) from None
    except BaseException:
        _remove_tree(staging)
        raise
    say(f"mixture written to {plan.out}")
    return manifest


def mix_file(
    spec_path: Path,
    out: Path | str | None = None,
    tokens: bool = False,
    strict: bool = False,
    echo: Echo | None = None,
    targets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`curate mix SPEC`: load the spec file (paths relative to it) and build the mixture; `targets`
    (NAME -> file or glob, from --target) join the spec's `eval.targets`."""
    spec = load_spec(spec_path)
    if targets:
        settings = spec.eval.model_copy(update={"targets": {**spec.eval.targets, **targets}})
        spec = spec.model_copy(update={"eval": settings})
    return build_mixture(spec, out, tokens, strict, echo)


class Phases:
    """Accumulates wall seconds per named phase into a caller's dict (or nowhere)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.into is not None:
                self.into[name] = round(self.into.get(name, 0.0) + time.perf_counter() - started, 3)


def _connect(staging: Path) -> duckdb.DuckDBPyConnection:
    config = {
        "threads": os.cpu_count() or 1,
        "memory_limit": DUCKDB_MEMORY,
        "temp_directory": str(staging / "_duckdb"),
    }
    return connect(**config)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class Session:
    """One DuckDB connection's worth of work: views over the corpus, candidates, selection, output."""

    def __init__(self, con: duckdb.DuckDBPyConnection, plan: MixPlan, say: Echo, clock: Phases) -> None:
        self.con, self.plan, self.say, self.clock = con, plan, say, clock
        self.parts = plan.parts()  # the parts sampled from (and token-counted)
        self.viewed = plan.corpora.parts if plan.has_suite else self.parts  # the suite spans every domain
        self.suite: dict[str, SuiteDomain] = {}
        self.near: tuple[int, list[int]] = (0, [])

    def prepare(self) -> None:
        """Corpus view, suite, token counts and candidates; the budget is checked before any output exists."""
        self._views()
        with self.clock("suite"):
            self._suite()
        if self.plan.counter.mode == "exact":
            with self.clock("count"):
                self._exact_counts()
        with self.clock("select"):
            self._candidates()
            check_budget(self.plan, self._availability(), "")
            self._selection()

    def preflight(self) -> None:
        """The budget check alone, never tokenizing: exact counts when cached, else the byte bound."""
        self._views()
        self._suite()
        if self.plan.counter.mode == "exact" and missing_counts(
            self.plan.corpora, self.parts, self.plan.counter
        ):
            check_budget(self.plan, self._upper_bounds(), " at most (UTF-8 bytes + 1 per document)")
            return
        if self.plan.counter.mode == "exact":
            self._exact_counts()
        self._candidates()
        check_budget(self.plan, self._availability(), "")

    def _views(self) -> None:
        files = pa.table(
            {
                "file_idx": [p.index for p in self.viewed],
                "corpus": pa.array([p.corpus for p in self.viewed], pa.int32()),
                "filename": [str(p.path) for p in self.viewed],
                "domain": [p.domain for p in self.viewed],
            }
        )
        self.con.register("files_arrow", files)
        self.con.execute("CREATE TEMP TABLE files AS SELECT * FROM files_arrow")
        self.con.unregister("files_arrow")
        register_filesystems(self.con, [p.path for p in self.viewed])
        self.con.read_parquet(
            [str(p.path) for p in self.viewed],
            union_by_name=True,
            filename=True,
            file_row_number=True,
            hive_partitioning=False,
        ).create_view("corpus")

    def _suite(self) -> None:
        """The evaluation suite and its near-duplicates, in the temp table `held_out` (empty without one)."""
        if not self.plan.has_suite:
            self.con.execute("CREATE TEMP TABLE held_out (corpus INTEGER, id VARCHAR, source VARCHAR)")
            return
        settings = self.plan.spec.eval
        self.suite = select_suite(self.con, settings, self.plan.corpora.columns())
        warn_short_domains(self.suite, settings, self.plan.notes)
        self.near = exclude_near_duplicates(
            self.con, self.plan.corpora, settings.near_threshold, self.plan.notes
        )
        held = sum(d.documents for d in self.suite.values())
        self.say(f"evaluation suite: {held:,} documents held out, {self.near[0]:,} near-duplicates excluded")

    def _filter_sql(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for domain in self.plan.active():
            sql, values = compile_predicate(domain.predicate)
            clauses.append(f"(domain = ? AND {sql})")
            params += [domain.name, *values]
        return " OR ".join(clauses) or "FALSE", params

    def _exact_counts(self) -> None:
        counter = self.plan.counter
        missing = missing_counts(self.plan.corpora, self.parts, counter)
        if missing:
            check_budget(self.plan, self._upper_bounds(), " at most (UTF-8 bytes + 1 per document)")
            self.say(f"counting tokens in {len(missing)} corpus part(s) (cached for the next mixture)")
            done = iter(range(1, len(missing) + 1))
            count_parts(
                self.plan.corpora,
                missing,
                counter,
                lambda part: self.say(f"  {next(done)}/{len(missing)} {part.rel}"),
            )
        sidecars = [str(sidecar_path(p, self.plan.corpora.roots[p.corpus], counter)) for p in self.parts]
        mapping = pa.table({"file_idx": [p.index for p in self.parts], "sidecar": sidecars})
        self.con.register("sidecar_arrow", mapping)
        self.con.execute("CREATE TEMP TABLE sidecar_files AS SELECT * FROM sidecar_arrow")
        self.con.unregister("sidecar_arrow")
        self.con.read_parquet(sidecars, filename=True).create_view("sidecars")

    def _upper_bounds(self) -> dict[str, tuple[int, int]]:
        """Tokens per domain can't exceed bytes + 1 (byte-level BPE): a bound that needs no tokenizer."""
        where, params = self._filter_sql()
        rows = self.con.execute(
            f"SELECT domain, count(*), sum(strlen(text)) + count(*) FROM corpus WHERE {where} "
            "GROUP BY domain",
            params,
        ).fetchall()
        return {domain: (int(docs), int(bound or 0)) for domain, docs, bound in rows}

    def _candidates(self) -> None:
        where, params = self._filter_sql()
        if self.plan.counter.mode == "exact":
            tokens_sql, token_params = "k.n_tokens", []
            counts_join = (
                "JOIN sidecar_files sf ON sf.file_idx = f.file_idx "
                "JOIN sidecars k ON k.filename = sf.sidecar AND k.row = c.row"
            )
        else:
            tokens_sql, token_params = estimate_sql(self.plan.counter, self.plan.corpora.columns())
            counts_join = ""
        inner_tokens = "NULL::BIGINT" if self.plan.counter.mode == "exact" else tokens_sql
        inner_params = [] if self.plan.counter.mode == "exact" else token_params
        outer_tokens = "k.n_tokens" if self.plan.counter.mode == "exact" else "c.est_tokens"
        self.con.execute(
            f"""
            CREATE TEMP TABLE candidates AS
            SELECT f.file_idx, c.row, c.id, c.domain, {outer_tokens} AS n_tokens
            FROM (
                SELECT filename, file_row_number AS row, id, source, domain, {inner_tokens} AS est_tokens
                FROM corpus WHERE {where}
            ) c
            JOIN files f ON f.filename = c.filename
            {counts_join}
            ANTI JOIN held_out h ON h.corpus = f.corpus AND h.id = c.id AND h.source = c.source
            """,
            inner_params + params,
        )

    def _availability(self) -> dict[str, tuple[int, int]]:
        rows = self.con.execute(
            "SELECT domain, count(*), sum(n_tokens) FROM candidates GROUP BY domain"
        ).fetchall()
        available = {domain: (int(docs), int(tokens or 0)) for domain, docs, tokens in rows}
        for domain in self.plan.domains.values():
            domain.docs, domain.tokens = available.get(domain.name, (0, 0))
        return available

    def _selection(self) -> None:
        epochs, targets = [], []
        for domain in self.plan.active():
            needed = math.ceil(domain.requested / domain.tokens)
            if needed > 1:
                warn(
                    f"domain {domain.name} repeats: {domain.requested / domain.tokens:.2f} epochs of its "
                    f"{domain.tokens:,} tokens ({domain.docs:,} documents) to reach {domain.requested:,} "
                    f"(max_epochs {domain.max_epochs:g})",
                    self.plan.notes,
                )
            epochs += [(domain.name, epoch) for epoch in range(needed)]
            targets.append((domain.name, domain.requested))
        self.con.execute("CREATE TEMP TABLE epochs (domain VARCHAR, epoch INTEGER)")
        self.con.executemany("INSERT INTO epochs VALUES (?, ?)", epochs)
        self.con.execute("CREATE TEMP TABLE targets (domain VARCHAR, target BIGINT)")
        self.con.executemany("INSERT INTO targets VALUES (?, ?)", targets)
        self.con.execute(
            """
            CREATE TEMP TABLE ranked AS
            SELECT c.file_idx, c.row, c.id, c.domain, c.n_tokens, e.epoch,
                row_number() OVER w AS position,
                sum(c.n_tokens) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                    - c.n_tokens AS before
            FROM candidates c JOIN epochs e ON e.domain = c.domain
            WINDOW w AS (
                PARTITION BY c.domain
                ORDER BY e.epoch, md5_number(? || ':' || CAST(e.epoch AS VARCHAR) || ':' || c.id),
                         c.file_idx, c.row
            )
            """,
            [str(self.plan.spec.seed)],
        )
        slack = self.plan.slack()
        self.con.execute(  # the prefix of each domain's order that fits: no overshoot beyond the slack
            """
            CREATE TEMP TABLE picked AS
            SELECT r.domain, r.position, r.n_tokens FROM ranked r JOIN targets t ON t.domain = r.domain
            WHERE r.before < t.target AND r.before + r.n_tokens <= t.target + ?
            """,
            [slack],
        )
        for name, target in targets:
            self._fill(name, target, slack)
        self.con.execute(
            """
            CREATE TEMP TABLE selection AS
            SELECT r.file_idx, r.row, r.id, r.domain, r.epoch, r.n_tokens
            FROM ranked r SEMI JOIN picked p ON p.domain = r.domain AND p.position = r.position
            """
        )

    def _fill(self, domain: str, target: int, slack: int) -> None:
        """Past a document too long for the rest of the target, take the next ones that still fit, in
        order, until the target is reached (the rows are streamed; the loop ends as soon as it is)."""
        taken, last = self.con.execute(
            "SELECT COALESCE(sum(n_tokens), 0), COALESCE(max(position), 0) FROM picked WHERE domain = ?",
            [domain],
        ).fetchall()[0]
        if taken >= target:
            return
        limit = target + slack
        reader = self.con.sql(
            "SELECT position, n_tokens FROM ranked WHERE domain = ? AND position > ? AND n_tokens <= ? "
            "ORDER BY position",
            params=[domain, last, limit - taken],
        ).to_arrow_reader(OUTPUT_BATCH)
        chosen = fill_in_order(reader, taken, target, limit)
        reader.close()
        if chosen:
            self.con.executemany("INSERT INTO picked VALUES (?, ?, ?)", [(domain, *row) for row in chosen])
        if taken + sum(n for _, n in chosen) < target:
            self._smallest_overshoot(domain, last)

    def _smallest_overshoot(self, domain: str, last: int) -> None:
        """Nothing left fits: the budget is still met, by the shortest remaining document (the share may
        then miss its tolerance, which `check_shares` reports)."""
        self.con.execute(
            """
            INSERT INTO picked
            SELECT r.domain, r.position, r.n_tokens FROM ranked r
            ANTI JOIN picked p ON p.domain = r.domain AND p.position = r.position
            WHERE r.domain = ? AND r.position > ?
            ORDER BY r.n_tokens, r.position LIMIT 1
            """,
            [domain, last],
        )

    def write(self, staging: Path) -> dict[str, Any]:
        """Stream the selected rows, shuffled across domains, into the parts; returns the manifest."""
        columns = [name for name in self.plan.corpora.columns() if name not in ADDED_COLUMNS]
        schema = pa.schema(
            [self.plan.corpora.schema.field(n) for n in columns]
            + [pa.field(n, t) for n, t in ADDED_COLUMNS.items()]
        )
        picked = ", ".join(f"c.{quote_identifier(n)}" for n in columns)
        self.say(f"writing {self._selected_rows():,} documents")
        reader = self.con.sql(
            f"""
            SELECT {picked}, s.epoch::INTEGER AS epoch, s.n_tokens AS n_tokens
            FROM selection s
            JOIN files f ON f.file_idx = s.file_idx
            JOIN corpus c ON c.filename = f.filename AND c.file_row_number = s.row
            ORDER BY md5_number(? || ':shuffle:' || CAST(s.epoch AS VARCHAR) || ':' || s.id),
                     s.file_idx, s.row, s.epoch
            """,
            params=[str(self.plan.spec.seed)],
        ).to_arrow_reader(OUTPUT_BATCH)
        writer = MixWriter(staging, schema)
        for batch in reader:
            writer.add(batch)
        parts = writer.close()
        achieved = self._achieved()
        check_shares(self.plan, achieved)
        manifest = build_manifest(self.plan, achieved, parts, staging)
        if self.plan.has_suite:
            manifest["eval_suite"] = write_suite(
                self.con, staging / SUITE_DIR, self.plan.spec.eval, self.plan.corpora, self.suite,
                self.plan.targets, self.near,
            )  # fmt: skip
        return manifest

    def _selected_rows(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM selection").fetchall()[0][0])

    def _achieved(self) -> dict[str, dict[str, int]]:
        rows = self.con.execute(
            """
            SELECT domain, count(*), count(DISTINCT (file_idx, row)), sum(n_tokens), max(epoch) + 1
            FROM selection GROUP BY domain
            """
        ).fetchall()
        return {
            domain: {
                "docs": int(docs),
                "unique_docs": int(unique),
                "tokens": int(tokens or 0),
                "passes": int(p),
            }
            for domain, docs, unique, tokens, p in rows
        }


def check_budget(plan: MixPlan, available: dict[str, tuple[int, int]], note: str) -> None:
    """Refuse a budget the corpora cannot give, naming every domain that falls short and by how much."""
    short = []
    for domain in plan.active():
        docs, tokens = available.get(domain.name, (0, 0))
        cap = tokens * domain.max_epochs
        if domain.requested > cap:
            where = (
                f", {docs:,} documents match `{domain.predicate.text()}`" if domain.predicate.clauses else ""
            )
            short.append(
                f"{domain.name} needs {domain.requested:,} but has {tokens:,} tokens{note}{where} "
                f"x max_epochs {domain.max_epochs:g} = {math.floor(cap):,}"
            )
    if short:
        total = sum(d.requested for d in plan.active())
        raise MixError(
            f"budget of {total:,} tokens is more than the corpora hold: {'; '.join(short)}; lower the budget "
            "or those domains' shares, raise max_epochs, or relax their `where`"
        )


def fill_in_order(reader: pa.RecordBatchReader, taken: int, target: int, limit: int) -> list[tuple[int, int]]:
    """(position, n_tokens) of the documents taken, in order, while the total stays within `limit`,
    until it reaches `target`."""
    chosen = []
    for batch in reader:
        for position, n_tokens in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            if taken + n_tokens <= limit:
                chosen.append((position, n_tokens))
                taken += n_tokens
                if taken >= target:
                    return chosen
    return chosen


def check_shares(plan: MixPlan, achieved: dict[str, dict[str, int]]) -> None:
    """Warn (and note in the manifest) for every domain whose share misses its request by more than the
    tolerance: it ran out of documents that fit (too small, too few short documents, max_epochs)."""
    requested = sum(d.requested for d in plan.active())
    total = sum(a["tokens"] for a in achieved.values())
    tolerance = plan.spec.share_tolerance
    for domain in plan.active():
        got = achieved.get(domain.name, {"tokens": 0})["tokens"]
        want, share = domain.requested / requested, _ratio(got, total)
        if abs(share - want) > tolerance + 1e-9:
            warn(
                f"domain {domain.name}: achieved share {share:.2%} ({got:,} tokens) vs {want:.2%} requested "
                f"({domain.requested:,}), beyond the share tolerance of {tolerance:.2%}: its "
                f"{domain.tokens:,} available tokens x max_epochs {domain.max_epochs:g} hold too few "
                "documents that fit; lower its share, raise max_epochs or share_tolerance",
                plan.notes,
            )


def build_manifest(
    plan: MixPlan, achieved: dict[str, dict[str, int]], parts: list, staging: Path
) -> dict[str, Any]:
    """What went in, exactly: requested vs achieved per domain, sources by hash, files by hash."""
    total_requested = sum(d.requested for d in plan.domains.values())
    total_achieved = sum(a["tokens"] for a in achieved.values())
    written = sum(p.tokens for p in parts)
    if written != total_achieved:
        raise RuntimeError(f"parts hold {written:,} tokens but the selection has {total_achieved:,}: a bug")
    domains = {}
    for domain in plan.domains.values():
        got = achieved.get(domain.name, {"docs": 0, "unique_docs": 0, "tokens": 0, "passes": 0})
        domains[domain.name] = {
            "weight": domain.weight,
            "requested_tokens": domain.requested,
            "requested_share": _ratio(domain.requested, total_requested),
            "achieved_tokens": got["tokens"],
            "achieved_share": _ratio(got["tokens"], total_achieved),
            "share_error": round(
                _ratio(got["tokens"], total_achieved) - _ratio(domain.requested, total_requested), 6
            ),
            "documents": got["docs"],
            "unique_documents": got["unique_docs"],
            "available_documents": domain.docs if domain.requested else None,  # inactive: never counted
            "available_tokens": domain.tokens if domain.requested else None,
            "epochs": round(got["tokens"] / domain.tokens, 4) if domain.tokens else 0.0,
            "passes": got["passes"],
            "max_epochs": domain.max_epochs,
            "where": domain.predicate.text(),
        }
    return {
        "kind": MIX_KIND,
        "version": 1,
        "spec": plan.spec.model_dump(mode="json"),
        "spec_hash": plan.spec.spec_hash(),
        "seed": plan.spec.seed,
        "tokenizer": plan.counter.describe(),
        "corpora": [
            {"path": str(root), "manifest_sha256": digest}
            for root, digest in zip(plan.corpora.roots, plan.corpora.manifest_sha256, strict=True)
        ],
        "domains": domains,
        "share_tolerance": plan.spec.share_tolerance,
        "totals": {
            "requested_tokens": total_requested,
            "achieved_tokens": total_achieved,
            "documents": sum(a["docs"] for a in achieved.values()),
        },
        "files": [
            {"path": p.path, "rows": p.rows, "tokens": p.tokens, "sha256": file_sha256(staging / p.path)}
            for p in parts
        ],
        "notes": list(plan.notes),
        "code_version": code_version(),
    }


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0
