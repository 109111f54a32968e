"""The global dedup phase as Ray work, for runs too large for one DuckDB process.

With `--executor ray` and at least `dedup.ray_min_documents` documents (this run's plus the pinned
index's), the whole phase after the shards runs on the cluster; below that, or with paragraph dedup
(whose counting is DuckDB-only), it runs in :mod:`curate.dedup.phase` as on the local executor, since a
small run would pay more for Ray's scheduling and shuffles than it saves. Both paths give the same
clusters and byte-identical corpus and rejects files.

The steps, each a Ray Data job whose rows stay on the workers:

1. candidate pairs: band and exact-hash buckets grouped by key (:mod:`curate.dedup.ray_pairs`), then
   grouped by pair, then verified (signature similarity in the group; `verify: exact` reads the texts
   of a batch of pairs on a worker, from the parts of those documents only);
2. connected components of the verified pairs (:mod:`curate.dedup.ray_components`);
3. a group-by on the node joins each component member to its sketch and each edge to its component,
   and a group-by on the component chooses the keeper and applies the chain rule of
   :func:`curate.dedup.cluster.choose_keepers` in memory (one component at a time, on a worker);
4. the member rows are written as Parquet under `_state/dedup/members/`, then a group-by on
   (source, domain) applies them to the parts with :func:`curate.dedup.apply.apply_to_part`.

The driver holds counts and the names of files, never a table of documents, pairs or members. A rerun
after a crash reuses the members once `members.json` records them; until then the steps rerun from the
sketches (they are a pure function of them and the pinned index), and parts already applied are skipped
by their markers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate.dedup.apply import apply_to_part, parts_of
from curate.dedup.cluster import DEDUP_REJECTS_PREFIX, TextLookup, components, sql_list
from curate.dedup.ray_components import EDGE_SCHEMA, column_sums, connected_components, sort_shuffles
from curate.dedup.ray_pairs import bucket_rows, parse_node, read_nodes, star_pairs
from curate.dedup.settings import DedupConfig
from curate.plan import RunPlan, shard_key
from curate.storage import (
    Location,
    arrow_filesystem,
    files_under,
    location,
    read_parquet,
    read_parquet_metadata,
    register_filesystems,
    remove_tree,
    write_atomic,
)
from curate.writer import SKETCH_DIR

MEMBERS_DIR = "members"  # _state/dedup/members/*.parquet: the Ray path's members table
MEMBERS_DONE = "members.json"  # the clustering counts, written once the members are in place
TEXT_BATCH = 20_000  # pairs or members whose texts a worker reads in one query
MAX_PARTITIONS = 512  # each shuffle has one partition per sketch file, up to this (Ray's default: 200)

VERDICT_SCHEMA = pa.schema(
    [
        pa.field("a", pa.string()),
        pa.field("b", pa.string()),
        pa.field("verified", pa.bool_()),
        pa.field("check_text", pa.bool_()),  # `verify: exact`: decided by the texts, not yet read
    ]
)
JOIN_SCHEMA = pa.schema(  # rows grouped by node: a sketch, a component label, or an edge from the node
    [
        pa.field("node", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("other", pa.string()),  # label: the component's root; edge: the other end
        pa.field("is_index", pa.bool_()),
        pa.field("n_chars", pa.int64()),
        pa.field("crawl_date", pa.int64()),
        pa.field("quality", pa.float64()),
        pa.field("exact_hash", pa.binary()),
        pa.field("signature", pa.binary()),
    ]
)
COMPONENT_SCHEMA = pa.schema([pa.field("root", pa.string()), *JOIN_SCHEMA])
MEMBER_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("cluster", pa.string()),
        pa.field("keeper", pa.bool_()),
        pa.field("reason", pa.string()),
        pa.field("similarity", pa.float64()),
    ]
)


def choose_global_path(plan: RunPlan, executor: str, segments: list[Location]) -> tuple[str, str]:
    """("duckdb" | "ray", why), from file metadata only; the same on every attempt of a run."""
    config = plan.config.dedup
    assert config is not None
    if executor != "ray":
        return "duckdb", f"executor {executor}"
    if config.paragraphs.enabled:
        return "duckdb", "paragraph dedup counts its units in DuckDB only"
    documents = _documents(plan, segments)
    if documents < config.ray_min_documents:
        return "duckdb", f"{documents} documents < dedup.ray_min_documents ({config.ray_min_documents})"
    return "ray", f"{documents} documents >= dedup.ray_min_documents ({config.ray_min_documents})"


def member_files(state: Location) -> list[Location]:
    """The members table of either path: one file (DuckDB path) or a folder of files (Ray path)."""
    single = state / "members.parquet"
    return [single] if single.exists() else files_under(state / MEMBERS_DIR, "*.parquet")


def run_ray_global(
    plan: RunPlan, segments: list[Location], state: Location
) -> tuple[dict[str, int], list[str]]:
    """Cluster, choose keepers and apply on Ray; returns the DedupResult counts and the files written."""
    partitions = min(max(len(_sketch_files(plan)) + len(segments), 1), MAX_PARTITIONS)
    with sort_shuffles():
        counts = {"documents": _documents(plan, segments), **_members(plan, segments, state, partitions)}
        files = _apply(plan, state / MEMBERS_DIR, partitions) if counts["clusters"] else []
    return counts, files


def _documents(plan: RunPlan, segments: list[Location]) -> int:
    return sum(read_parquet_metadata(f).num_rows for f in [*_sketch_files(plan), *segments])


def _sketch_files(plan: RunPlan) -> list[Location]:
    return files_under(plan.out / SKETCH_DIR, "*.parquet")


def _members(plan: RunPlan, segments: list[Location], state: Location, partitions: int) -> dict[str, int]:
    """Write `members/` and `members.json` unless an earlier attempt did; return the counts.

    `members.json` commits the folder: an attempt killed while writing it leaves files no reader trusts,
    and the next attempt clears them first (no rename needed, so the same on an object store)."""
    done = state / MEMBERS_DONE
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    config = plan.config.dedup
    assert config is not None
    final = state / MEMBERS_DIR
    remove_tree(final)
    nodes = _nodes(_sketch_files(plan), segments)
    pairs = _pair_verdicts(nodes, config, partitions).materialize()
    counts = {"candidate_pairs": pairs.count()}
    edges = _verified_edges(pairs, plan.out, config).materialize()
    counts["verified_pairs"] = edges.count()
    counts |= {"clusters": 0, "exact_duplicate": 0, "near_duplicate": 0}
    if counts["verified_pairs"]:
        members = _settled_members(nodes, edges, plan.out, config, partitions).materialize()
        filesystem, inner = arrow_filesystem(final)
        members.write_parquet(inner, filesystem=filesystem)
        counts |= _cluster_counts(members, partitions)
    write_atomic(done, json.dumps(counts))
    return counts


def _nodes(sketches: list[Location], segments: list[Location]) -> Any:
    """Node rows of every document."""
    files = [(p, False) for p in sketches] + [(p, True) for p in segments]
    return _read_in_workers(files, read_nodes)


def _read_in_workers(files: list[tuple[Location, bool]], read: Callable[[str, bool], pa.Table]) -> Any:
    """A Dataset of `read(path, flag)` for each file, one block per file, read inside a worker
    (a plain task: cheaper to start than ray.data.read_parquet's file listing and reader stages)."""
    import ray.data

    items = [{"path": str(path), "flag": flag} for path, flag in files]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        lambda batch: pa.concat_tables(
            read(path, flag)
            for path, flag in zip(batch["path"].to_pylist(), batch["flag"].to_pylist(), strict=True)
        ),
        batch_size=1,
        batch_format="pyarrow",
    )


def _pair_verdicts(nodes: Any, config: DedupConfig, partitions: int) -> Any:
    """One row per distinct candidate pair (a, b), a > b, with what its verification says so far."""
    exact, near, num_perm = config.exact, config.near, config.num_perm
    return (
        nodes.map_batches(lambda t: bucket_rows(t, exact, near), batch_format="pyarrow")
        .groupby("key", num_partitions=partitions)
        .map_groups(lambda g: star_pairs(g, num_perm), batch_format="pyarrow")
        .groupby(["a", "b"], num_partitions=partitions)
        .map_groups(lambda g: _verdict(g, config), batch_format="pyarrow")
    )


def _verdict(group: pa.Table, config: DedupConfig) -> pa.Table:
    """A pair found in an exact-hash bucket passes; otherwise its similarity decides, as in
    cluster.verified_pairs (texts for `verify: exact`, unless b is an index document)."""
    a, b = group["a"][0].as_py(), group["b"][0].as_py()
    if any(group["exact"].to_pylist()) or config.verify == "none":
        verified, check = True, False
    elif config.verify == "exact" and not parse_node(b)[0]:
        verified, check = False, True
    else:
        verified, check = group["similarity"][0].as_py() >= config.threshold, False
    return pa.table(
        {"a": [a], "b": [b], "verified": [verified], "check_text": [check]}, schema=VERDICT_SCHEMA
    )


def _verified_edges(pairs: Any, out: Location, config: DedupConfig) -> Any:
    """Edges (u, v) of the pairs that pass, texts read for those that need them."""
    passed = pairs.map_batches(lambda t: t.filter(t["verified"]), batch_format="pyarrow")
    if config.verify == "exact":
        checked = pairs.map_batches(
            lambda t: _text_verdicts(t.filter(t["check_text"]), out, config),
            batch_size=TEXT_BATCH,
            batch_format="pyarrow",
        )
        passed = passed.union(checked)
    return passed.map_batches(
        lambda t: pa.table({"u": t["a"], "v": t["b"]}, schema=EDGE_SCHEMA), batch_format="pyarrow"
    )


def _text_verdicts(pairs: pa.Table, out: Location, config: DedupConfig) -> pa.Table:
    if not pairs.num_rows:
        return pairs
    a, b = pairs["a"].to_pylist(), pairs["b"].to_pylist()
    lookup = _texts(out, config, a + b)
    passed = [
        lookup.jaccard(_text_key(x), _text_key(y)) >= config.threshold for x, y in zip(a, b, strict=True)
    ]
    return pairs.filter(pa.array(passed, pa.bool_()))


def _text_key(node: str) -> tuple[str, str]:
    _, doc_id, source, _ = parse_node(node)
    return doc_id, source


def _texts(out: Location, config: DedupConfig, nodes: list[str]) -> TextLookup:
    """A TextLookup holding the shingle sets of `nodes` (run documents), read from their own parts only
    (and their dedup rejects, where a resumed phase finds some): not from every part of the corpus."""
    lookup = TextLookup(out / "corpus", config)
    wanted = {parse_node(n)[1:] for n in nodes if not parse_node(n)[0]}
    places = {(source, domain) for _, source, domain in wanted}
    files = sorted(
        {p for source, domain in places for p in parts_of(out, source, domain)}
        | {
            p
            for source, domain in places
            for p in files_under(
                out / "rejects", f"{DEDUP_REJECTS_PREFIX}{domain}-part-{shard_key(source)}-*.parquet"
            )
        },
        key=str,
    )
    if files:
        lookup.shingles = _shingle_sets(lookup, files, sorted(wanted))
    lookup.con.close()
    return lookup


def _shingle_sets(lookup: TextLookup, files: list[Location], wanted: list[tuple[str, str, str]]) -> dict:
    """(id, source) -> the set of shingle hashes, as TextLookup.prefetch makes them."""
    from curate.dedup.shingles import shingle_hashes

    con = lookup.con
    register_filesystems(con, files)
    con.register("wanted", pa.table({"id": [w[0] for w in wanted], "source": [w[1] for w in wanted]}))
    rows = con.execute(
        "SELECT DISTINCT ON (c.id, c.source) c.id, c.source, c.text "
        f"FROM read_parquet({sql_list(files)}, hive_partitioning=false, union_by_name=true) c "
        "JOIN wanted w ON c.id = w.id AND c.source = w.source"
    ).fetchall()
    batch = shingle_hashes([r[2] for r in rows], lookup.hasher.ngram, lookup.hasher.seed)
    return {
        (doc_id, source): np.unique(batch.hashes[batch.offsets[i] : batch.offsets[i + 1]])
        for i, (doc_id, source, _) in enumerate(rows)
    }


def _settled_members(nodes: Any, edges: Any, out: Location, config: DedupConfig, partitions: int) -> Any:
    """Member rows of every component: the keeper and its duplicates, chain rule applied."""
    labels = connected_components(edges, partitions)
    sketches = nodes.map_batches(_sketch_rows, batch_format="pyarrow")
    placed = (
        sketches.union(
            labels.map_batches(_label_rows, batch_format="pyarrow"),
            edges.map_batches(_edge_rows, batch_format="pyarrow"),
        )
        .groupby("node", num_partitions=partitions)
        .map_groups(_place_in_component, batch_format="pyarrow")
    )
    if config.verify == "exact":
        placed = placed.map_batches(
            lambda rows: _attach_shingles(rows, out, config), batch_size=TEXT_BATCH, batch_format="pyarrow"
        )
    return placed.groupby("root", num_partitions=partitions).map_groups(
        lambda g: _settle(g, config), batch_format="pyarrow"
    )


def _attach_shingles(rows: pa.Table, out: Location, config: DedupConfig) -> pa.Table:
    """`verify: exact`: each run document's shingle set (uint32 bytes) beside its sketch, read for a
    whole batch of component rows at once rather than once per component."""
    nodes = rows["node"].to_pylist()
    wanted = [
        n if kind == "sketch" else None for n, kind in zip(nodes, rows["kind"].to_pylist(), strict=True)
    ]
    shingles = _texts(out, config, [n for n in wanted if n is not None]).shingles  # index nodes are skipped
    column = [None if n is None else shingles.get(_text_key(n)) for n in wanted]
    return rows.append_column(
        "shingles", pa.array([None if s is None else s.tobytes() for s in column], pa.binary())
    )


def _sketch_rows(nodes: pa.Table) -> pa.Table:
    n = nodes.num_rows
    return pa.table(
        {
            "node": nodes["node"],
            "kind": pa.array(["sketch"] * n, pa.string()),
            "other": pa.nulls(n, pa.string()),
            **{name: nodes[name] for name in JOIN_SCHEMA.names[3:]},
        },
        schema=JOIN_SCHEMA,
    )


def _label_rows(labels: pa.Table) -> pa.Table:
    return _link_rows(labels["node"], "label", labels["root"])


def _edge_rows(edges: pa.Table) -> pa.Table:
    return _link_rows(edges["u"], "edge", edges["v"])


def _link_rows(node: pa.ChunkedArray, kind: str, other: pa.ChunkedArray) -> pa.Table:
    n = len(node)
    columns = {"node": node, "kind": pa.array([kind] * n, pa.string()), "other": other}
    columns |= {field.name: pa.nulls(n, field.type) for field in JOIN_SCHEMA if field.name not in columns}
    return pa.table(columns, schema=JOIN_SCHEMA)


def _place_in_component(group: pa.Table) -> pa.Table:
    """A node's sketch and its edges, each tagged with the node's component (nothing off the graph)."""
    kinds = group["kind"].to_pylist()
    if "label" not in kinds:
        return COMPONENT_SCHEMA.empty_table()
    root = group["other"][kinds.index("label")].as_py()
    rows = group.filter(pa.array([k != "label" for k in kinds]))
    return rows.add_column(0, "root", pa.array([root] * rows.num_rows, pa.string())).cast(COMPONENT_SCHEMA)


def _settle(component: pa.Table, config: DedupConfig) -> pa.Table:
    """choose_keepers on one component: the keep policy picks the keeper, members within threshold of
    it are its duplicates, and the rest are clustered again on their own edges until none is left."""
    kinds = component["kind"].to_pylist()
    sketch_rows = component.filter(pa.array([k == "sketch" for k in kinds]))
    docs = {row["node"]: row for row in sketch_rows.to_pylist()}
    edge_rows = component.filter(pa.array([k == "edge" for k in kinds]))
    a = np.array(edge_rows["node"].to_pylist(), dtype=object)
    b = np.array(edge_rows["other"].to_pylist(), dtype=object)
    similarity_to = _similarity(docs, config)
    rank = _rank_key(config)
    assigned: list[tuple[str, str, float]] = []  # (node, keeper node, similarity)
    while len(a):
        nodes, labels = components(a.astype(str), b.astype(str))
        gone: set[str] = set()
        for label in np.unique(labels):
            members = sorted((docs[n] for n in nodes[labels == label]), key=rank)
            keeper, others = members[0], members[1:]
            passed = [(m["node"], s) for m in others if (s := similarity_to(m, keeper)) is not None]
            if passed:
                assigned += [(keeper["node"], keeper["node"], 1.0)] + [
                    (n, keeper["node"], s) for n, s in passed
                ]
            gone |= {keeper["node"], *(n for n, _ in passed)}
        residual = np.array([x not in gone and y not in gone for x, y in zip(a, b, strict=True)], dtype=bool)
        a, b = a[residual], b[residual]
    return _member_table(assigned, docs)


def _similarity(docs: dict[str, dict], config: DedupConfig) -> Callable[[dict, dict], float | None]:
    """(member, keeper) -> the member's similarity to the keeper if it passes (as verified_pairs rates
    a keeper pair), else None. Text Jaccard comes from the shingle sets attached to the rows."""
    texts: list[TextLookup] = []

    def rate(member: dict, keeper: dict) -> float | None:
        if config.verify == "none" or member["exact_hash"] == keeper["exact_hash"]:
            return 1.0
        if config.verify == "exact" and not keeper["is_index"]:
            if not texts:
                texts.append(_attached_texts(docs, config))
            score = texts[0].jaccard(_text_key(member["node"]), _text_key(keeper["node"]))
        else:
            mine = np.frombuffer(member["signature"], dtype=np.uint32)
            score = float((mine == np.frombuffer(keeper["signature"], dtype=np.uint32)).mean())
        return score if score >= config.threshold else None

    return rate


def _attached_texts(docs: dict[str, dict], config: DedupConfig) -> TextLookup:
    lookup = TextLookup(Path(), config)
    lookup.con.close()
    lookup.shingles = {
        _text_key(node): np.frombuffer(doc["shingles"], dtype=np.uint32)
        for node, doc in docs.items()
        if doc.get("shingles") is not None
    }
    return lookup


def _rank_key(config: DedupConfig) -> Callable[[dict], tuple]:
    """The DuckDB path's ORDER BY (is_index DESC, keep rules, id, source) as a sort key; the node
    string orders by (index first, id, source) itself."""

    def quality(doc: dict) -> tuple:  # DESC NULLS LAST; DuckDB sorts NaN above every number
        q = doc["quality"]
        return (q is None, not (q is not None and math.isnan(q)), 0.0 if q is None or math.isnan(q) else -q)

    rules: dict[str, Callable[[dict], tuple]] = {
        "quality": quality,
        "longest": lambda doc: (-doc["n_chars"],),
        "oldest": lambda doc: (doc["crawl_date"] is None, doc["crawl_date"] or 0),
    }
    chosen = [rules[rule] for rule in config.keep]
    return lambda doc: (not doc["is_index"], *(part for rule in chosen for part in rule(doc)), doc["node"])


def _member_table(assigned: list[tuple[str, str, float]], docs: dict[str, dict]) -> pa.Table:
    rows = []
    for node, keeper, similarity in assigned:
        is_index, doc_id, source, domain = parse_node(node)
        if is_index:
            continue
        is_keeper = node == keeper
        same = docs[node]["exact_hash"] == docs[keeper]["exact_hash"]
        reason = None if is_keeper else "exact_duplicate" if same else "near_duplicate"
        rows.append((doc_id, source, domain, parse_node(keeper)[1], is_keeper, reason, similarity))
    columns = list(zip(*rows, strict=True)) if rows else [[]] * len(MEMBER_SCHEMA)
    return pa.table(dict(zip(MEMBER_SCHEMA.names, columns, strict=True)), schema=MEMBER_SCHEMA)


def _cluster_counts(members: Any, partitions: int) -> dict[str, int]:
    """Clusters (distinct keeper ids, as the DuckDB path counts them) and duplicates by reason."""
    per_cluster = members.groupby("cluster", num_partitions=partitions).map_groups(
        _reasons, batch_format="pyarrow"
    )
    return column_sums(per_cluster, ["clusters", "exact_duplicate", "near_duplicate"])


def _reasons(cluster: pa.Table) -> pa.Table:
    reasons = cluster["reason"].to_pylist()
    return pa.table(
        {
            "clusters": [1],
            "exact_duplicate": [reasons.count("exact_duplicate")],
            "near_duplicate": [reasons.count("near_duplicate")],
        }
    )


def _apply(plan: RunPlan, members: Location, partitions: int) -> list[str]:
    """apply_to_part for every part of every (source, domain) with members, one group per worker call;
    the driver collects file names only."""
    out, corpus, rejects = plan.out, plan.corpus_schema, plan.reject_schema

    def apply_group(group: pa.Table) -> pa.Table:
        source, domain = group["source"][0].as_py(), group["domain"][0].as_py()
        files = [
            f
            for part in parts_of(out, source, domain)
            for f in apply_to_part(out, part, group, corpus, rejects)
        ]
        return pa.table({"file": pa.array(files, pa.string())})

    written = (
        _read_in_workers(
            [(f, False) for f in files_under(members, "*.parquet")],
            lambda path, _: read_parquet(location(path)),
        )
        .groupby(["source", "domain"], num_partitions=partitions)
        .map_groups(apply_group, batch_format="pyarrow")
    )
    return sorted({row["file"] for row in written.iter_rows()})
