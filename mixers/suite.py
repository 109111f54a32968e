"""The evaluation suite: the documents every mixture of a set of corpora is scored on, and never trained on.

A proxy score only ranks mixtures when they are all scored on the same documents, none of which any of
them trained on. So the held-out split is chosen at the corpus level, before any sampling, from nothing a
mixture spec decides (weights, `where`, seed, tokenizer): per domain (the folder `domain=NAME`), documents
are ranked by md5 of a fixed salt and their id and taken until `eval.tokens` (estimated as characters / 4,
so the choice does not depend on a tokenizer) or `eval.max_share` of the domain is reached, whichever is
smaller (the cap); a document longer than the cap is never chosen, so one huge file cannot become the
whole suite. A domain of one document gives none, and every domain keeps at least one training document.

The sampler never draws a suite document, nor a near-duplicate of one: a corpus document whose dedup
sketch (`OUT/_dedup/`, written by `curate run` with `dedup:`) shares an exact hash with a suite document,
or shares an LSH band key and reaches `eval.near_threshold` estimated Jaccard on the MinHash signatures.
A corpus without sketches is said so (a warning, and `near_duplicates: unchecked` in suite.json).

Named target sets (`eval.targets: {NAME: GLOB}`) are files of texts the user cares about, scored beside
the domains. The suite is written with the mixture, `MIX/eval/documents.parquet` (kind, domain, id,
source, text) and `MIX/eval/suite.json`, which names the corpora by manifest hash. Its `hash` is a
sha256 of the documents themselves, so two mixtures built from the same corpora and eval settings carry
the same hash, and the trainer refuses to compare results with different ones.
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.dedup import estimate_jaccard
from curate.storage import Location, files_under, register_filesystems
from curate.writer import SKETCH_DIR
from mixers.corpus import CorpusSet
from mixers.errors import MixError, warn
from mixers.output import write_json
from mixers.spec import EvalSpec

SUITE_DIR = "eval"
SUITE_FILE = "suite.json"
SUITE_DOCS = "documents.parquet"
SUITE_KIND = "curate-eval-suite"
SUITE_SALT = "curate-eval-suite:"
CHARS_PER_TOKEN = 4
HELD_OUT, TARGET = "held_out", "target"
DOC_SCHEMA = pa.schema(
    [("kind", pa.string()), ("domain", pa.string()), ("id", pa.string()), ("source", pa.string()),
     ("text", pa.large_string())]
)  # fmt: skip


@dataclass(frozen=True)
class SuiteDomain:
    """One domain's part of the suite, beside what the domain holds (token figures are estimates)."""

    documents: int
    tokens: int
    domain_documents: int
    domain_tokens: int


def select_suite(
    con: duckdb.DuckDBPyConnection, settings: EvalSpec, columns: list[str]
) -> dict[str, SuiteDomain]:
    """Create the temp table `suite` (corpus, file_idx, row, id, source, domain, rank) over every domain of
    the `corpus` view; returns the per-domain figures."""
    chars = "n_chars" if "n_chars" in columns else "length(text)"
    estimate = f"CAST(ceil(COALESCE({chars}, 0) / {CHARS_PER_TOKEN}) AS BIGINT)"
    con.execute(
        f"""
        CREATE TEMP TABLE suite_ranked AS
        SELECT f.corpus, f.file_idx, c.file_row_number AS row, c.id, c.source, f.domain,
               {estimate} AS est_tokens,
               md5_number(? || c.id) AS rank
        FROM corpus c JOIN files f ON f.filename = c.filename
        """,
        [SUITE_SALT],
    )
    con.execute(
        """
        CREATE TEMP TABLE suite AS
        WITH sized AS (
            SELECT r.*, count(*) OVER (PARTITION BY domain) AS domain_docs,
                least(?, floor(? * sum(est_tokens) OVER (PARTITION BY domain))) AS cap
            FROM suite_ranked r
        ),
        ordered AS (
            SELECT s.*, row_number() OVER w AS position,
                sum(est_tokens) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                    - est_tokens AS before
            FROM sized s
            WHERE est_tokens <= cap AND domain_docs >= 2
            WINDOW w AS (PARTITION BY domain ORDER BY rank, id, source, corpus, row)
        )
        SELECT * EXCLUDE (position, before, domain_docs, cap) FROM ordered
        WHERE before < cap AND position < domain_docs
        """,
        [settings.tokens, settings.max_share],
    )
    totals = con.execute(
        "SELECT domain, count(*), sum(est_tokens) FROM suite_ranked GROUP BY domain ORDER BY domain"
    ).fetchall()
    taken = {
        domain: (int(docs), int(tokens or 0))
        for domain, docs, tokens in con.execute(
            "SELECT domain, count(*), sum(est_tokens) FROM suite GROUP BY domain"
        ).fetchall()
    }
    return {
        domain: SuiteDomain(*taken.get(domain, (0, 0)), int(docs), int(tokens or 0))
        for domain, docs, tokens in totals
    }


def warn_short_domains(domains: dict[str, SuiteDomain], settings: EvalSpec, notes: list[str]) -> None:
    """A domain too small for the suite's target gives a share of itself (or nothing): say which."""
    for name, domain in domains.items():
        if domain.tokens >= settings.tokens:
            continue
        share = domain.tokens / domain.domain_tokens if domain.domain_tokens else 0.0
        warn(
            f"evaluation suite: domain {name} holds ~{domain.domain_tokens:,} tokens in "
            f"{domain.domain_documents:,} document(s); the suite takes ~{domain.tokens:,} ({share:.0%}, "
            f"{domain.documents:,} document(s)), under its {settings.tokens:,}-token target "
            f"(max_share {settings.max_share:g}, at least one document left for training)",
            notes,
        )


def exclude_near_duplicates(
    con: duckdb.DuckDBPyConnection, corpora: CorpusSet, threshold: float, notes: list[str]
) -> tuple[int, list[int]]:
    """Create the temp table `held_out` (corpus, id, source): the suite plus every corpus document that is
    a near-duplicate of a suite document, found through the corpora's dedup sketches (which also hold
    documents dedup removed later: those are not counted). Returns (near-duplicates, corpora with no
    sketches)."""
    con.execute("CREATE TEMP TABLE held_out (corpus INTEGER, id VARCHAR, source VARCHAR, reason VARCHAR)")
    con.execute("INSERT INTO held_out SELECT corpus, id, source, 'suite' FROM suite")
    sketches, unchecked = _sketch_files(corpora)
    for index in unchecked:
        warn(
            f"evaluation suite: corpus {corpora.roots[index]} has no dedup sketches ({SKETCH_DIR}/); "
            "near-duplicates of suite documents cannot be kept out of training there; run it with `dedup:`",
            notes,
        )
    if not sketches:
        return 0, unchecked
    register_filesystems(con, [path for _, path in sketches])  # Locations: local or on an object store
    columns = "id, source, exact_hash, bands, signature"
    union = " UNION ALL ".join(
        f"SELECT {index} AS corpus, {columns} FROM read_parquet({_quoted(str(path))})"
        for index, path in sketches
    )
    con.execute(f"CREATE TEMP TABLE sketch AS {union}")
    pairs = con.execute(
        """
        WITH mine AS (SELECT s.* FROM sketch s SEMI JOIN suite q
                      ON q.corpus = s.corpus AND q.id = s.id AND q.source = s.source),
        keys AS (SELECT corpus, id, source, unnest(bands) AS key FROM mine),
        by_band AS (
            SELECT DISTINCT o.corpus, o.id, o.source, m.corpus AS m_corpus, m.id AS m_id, m.source AS m_source
            FROM (SELECT corpus, id, source, unnest(bands) AS key FROM sketch) o
            JOIN keys m ON m.key = o.key
        ),
        by_hash AS (
            SELECT o.corpus, o.id, o.source FROM sketch o JOIN mine m ON m.exact_hash = o.exact_hash
        )
        SELECT b.corpus, b.id, b.source, o.signature, m.signature, false AS exact
        FROM by_band b
        JOIN sketch o ON o.corpus = b.corpus AND o.id = b.id AND o.source = b.source
        JOIN sketch m ON m.corpus = b.m_corpus AND m.id = b.m_id AND m.source = b.m_source
        UNION ALL SELECT corpus, id, source, NULL, NULL, true FROM by_hash
        """
    ).fetchall()
    near = {
        (corpus, doc_id, source)
        for corpus, doc_id, source, mine, other, exact in pairs
        if exact or estimate_jaccard(_signature(mine), _signature(other)) >= threshold
    }
    con.execute("CREATE TEMP TABLE near_dups (corpus INTEGER, id VARCHAR, source VARCHAR)")
    con.executemany("INSERT INTO near_dups VALUES (?, ?, ?)", sorted(near))
    added = con.execute(
        """
        INSERT INTO held_out SELECT corpus, id, source, 'near_duplicate' FROM near_dups
        ANTI JOIN held_out h USING (corpus, id, source)
        SEMI JOIN suite_ranked r USING (corpus, id, source)
        """
    ).fetchall()
    return int(added[0][0]) if added else 0, unchecked


def _sketch_files(corpora: CorpusSet) -> tuple[list[tuple[int, Location]], list[int]]:
    found, missing = [], []
    for index, root in enumerate(corpora.roots):
        files = files_under(root / SKETCH_DIR, "*.parquet")
        found += [(index, path) for path in files]
        if not files:
            missing.append(index)
    return found, missing


def _quoted(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _signature(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u4")


def check_targets(settings: EvalSpec, domains: list[str]) -> dict[str, list[Path]]:
    """The files of each target set, before any work: a name clashing with a domain, or a glob that
    matches nothing, is a one-line error."""
    found = {}
    for name, pattern in sorted(settings.targets.items()):
        if name in domains:
            raise MixError(
                f"eval.targets.{name}: a domain of the corpora has that name; rename the target set"
            )
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not files:
            raise MixError(
                f"eval.targets.{name}: {pattern} matches no file; give a JSONL/Parquet/WARC file or glob"
            )
        found[name] = files
    return found


def write_suite(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    settings: EvalSpec,
    corpora: CorpusSet,
    domains: dict[str, SuiteDomain],
    targets: dict[str, list[Path]],
    near: tuple[int, list[int]],
) -> dict[str, Any]:
    """MIX/eval/documents.parquet and suite.json; returns the mixture manifest's `eval_suite` entry."""
    folder.mkdir(parents=True, exist_ok=True)
    held = con.sql(
        f"""
        SELECT '{HELD_OUT}' AS kind, q.domain, q.id, q.source, c.text
        FROM suite q JOIN files f ON f.file_idx = q.file_idx
        JOIN corpus c ON c.filename = f.filename AND c.file_row_number = q.row
        ORDER BY q.domain, q.rank, q.id, q.source, q.corpus, q.row
        """
    ).to_arrow_table()
    target_docs, tables = target_tables(targets)
    documents = pa.concat_tables([held.cast(DOC_SCHEMA), *tables])
    pq.write_table(documents, folder / SUITE_DOCS, compression="zstd")
    suite = {
        "kind": SUITE_KIND,
        "version": 1,
        "hash": suite_hash(documents),
        "settings": settings.model_dump(mode="json", exclude={"targets"}),
        "corpora": [
            {"path": str(root), "manifest_sha256": digest}
            for root, digest in zip(corpora.roots, corpora.manifest_sha256, strict=True)
        ],
        "domains": {name: vars(domain) for name, domain in domains.items()},
        "targets": target_docs,
        "near_duplicates_excluded": near[0],
        "near_duplicates": "checked"
        if not near[1]
        else f"unchecked in corpora {near[1]} (no dedup sketches)",
    }
    write_json(folder / SUITE_FILE, suite)
    return {
        "path": SUITE_DIR,
        "hash": suite["hash"],
        "documents": documents.num_rows,
        "near_duplicates_excluded": near[0],
    }


def target_tables(targets: dict[str, list[Path]]) -> tuple[dict[str, Any], list[pa.Table]]:
    """Each target set's texts as suite rows (domain = its name), and what suite.json says of it."""
    if not targets:
        return {}, []
    from trainer.proxy import target_texts  # imports torch: only when there are target sets

    described, tables = {}, []
    for name, files in targets.items():
        rows = [
            (f"{p.name}:{i}", str(p), text) for p in files for i, text in enumerate(target_texts(p, name))
        ]
        if not rows:
            raise MixError(f"eval.targets.{name}: {', '.join(map(str, files))} hold no texts")
        described[name] = {"files": [str(p) for p in files], "documents": len(rows)}
        ids, sources, texts = zip(*rows, strict=True)
        kinds, names = [TARGET] * len(rows), [name] * len(rows)
        tables.append(pa.table([kinds, names, list(ids), list(sources), list(texts)], schema=DOC_SCHEMA))
    return described, tables


def suite_hash(documents: pa.Table) -> str:
    """sha256 of the documents (kind, domain, id, source, sha256 of the text), in file order."""
    digest = hashlib.sha256()
    for row in documents.to_pylist():
        text = hashlib.sha256((row["text"] or "").encode()).hexdigest()
        line = [row["kind"], row["domain"], row["id"], row["source"], text]
        digest.update((json.dumps(line) + "\n").encode())
    return digest.hexdigest()
