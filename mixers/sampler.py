"""Build a mixture: validate, count tokens, select per domain in DuckDB, write shuffled Parquet parts.

The corpus never enters Python memory. DuckDB scans the Parquet parts (only the columns a query names),
the selection is a small table of (file, row, epoch) keys, and the final shuffled rows stream out of
DuckDB in Arrow batches straight into the part writer.

Determinism: every order is a total order on seeded md5 hashes of document ids with (file, row, epoch)
tie-breaks, never `random()` or scan order, so one seed gives the same rows in the same order on any
thread count, and the writer turns them into the same bytes.

Per domain: documents are ranked by md5(seed:epoch:id) within each epoch, epochs follow one another, and
documents are taken while the tokens before them are under the domain's target. A domain reaches its
target without replacement when it can; otherwise it repeats (each epoch in a new order) up to its
`max_epochs`, with a warning. The overshoot is at most one document per domain.
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
    notes: list[str] = field(default_factory=list)

    def active(self) -> list[DomainPlan]:
        return [d for d in self.domains.values() if d.requested > 0]

    def parts(self) -> list[PartFile]:
        return self.corpora.parts_for({d.name for d in self.active()})


def plan_mixture(
    spec: MixtureSpec, out: Path | str | None, tokens: bool = False, strict: bool = False
) -> MixPlan:
    """All user errors, found from the spec, the corpora's manifests and Parquet footers only."""
    target = out if out is not None else spec.output
    if target is not None and is_url(str(target)):
        raise MixError(f"--out {target}: a mixture is written to a local folder (its corpora may be on s3://)")
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
    return MixPlan(spec, out_path, corpora, counter, domains, tokens, notes)


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
) -> dict[str, Any]:
    """`curate mix SPEC`: load the spec file (paths relative to it) and build the mixture."""
    return build_mixture(load_spec(spec_path), out, tokens, strict, echo)


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
        self.parts = plan.parts()

    def prepare(self) -> None:
        """Corpus view, token counts and candidates; the budget is checked before any output exists."""
        self._views()
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
                "file_idx": [p.index for p in self.parts],
                "filename": [str(p.path) for p in self.parts],
                "domain": [p.domain for p in self.parts],
            }
        )
        self.con.register("files_arrow", files)
        self.con.execute("CREATE TEMP TABLE files AS SELECT * FROM files_arrow")
        self.con.unregister("files_arrow")
        register_filesystems(self.con, [p.path for p in self.parts])
        self.con.read_parquet(
            [str(p.path) for p in self.parts],
            union_by_name=True,
            filename=True,
            file_row_number=True,
            hive_partitioning=False,
        ).create_view("corpus")

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
                SELECT filename, file_row_number AS row, id, domain, {inner_tokens} AS est_tokens
                FROM corpus WHERE {where}
            ) c
            JOIN files f ON f.filename = c.filename
            {counts_join}
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
            CREATE TEMP TABLE selection AS
            SELECT r.file_idx, r.row, r.id, r.domain, r.epoch, r.n_tokens
            FROM (
                SELECT c.*, e.epoch,
                    sum(c.n_tokens) OVER (
                        PARTITION BY c.domain
                        ORDER BY e.epoch, md5_number(? || ':' || CAST(e.epoch AS VARCHAR) || ':' || c.id),
                                 c.file_idx, c.row
                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
                    ) - c.n_tokens AS before
                FROM candidates c JOIN epochs e ON e.domain = c.domain
            ) r JOIN targets t ON t.domain = r.domain
            WHERE r.before < t.target
            """,
            [str(self.plan.spec.seed)],
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
        return build_manifest(self.plan, self._achieved(), parts, staging)

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
