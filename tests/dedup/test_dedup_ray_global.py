"""The global dedup phase on Ray (curate.dedup.ray_global) against the DuckDB path, on real text.

One batch holds exact copies (across shards and domains), near copies, a chain A~B~C whose C is below
the threshold against the keeper A, copies of documents an earlier run put in the persistent index, and
unrelated documents, over two inputs (two domains) of two shards each. Forced onto Ray
(`ray_min_documents: 0`) the phase must give the same members, byte-identical corpus and rejects files,
and the same index segment as the DuckDB path; rerun after a crash that lost its clustering, the same
files again. A run below the threshold stays on DuckDB and the manifest says why.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.config import parse_config, resolve_paths
from curate.dedup.cluster import (
    candidate_pairs,
    choose_keepers,
    components,
    load_docs,
    open_work_db,
    verified_pairs,
)
from curate.dedup.phase import STATE, run_dedup
from curate.dedup.ray_components import connected_components, sort_shuffles
from curate.dedup.ray_global import MEMBERS_DONE, _link_rows, _settle, _sketch_rows, member_files
from curate.dedup.ray_pairs import read_nodes
from curate.dedup.settings import DedupConfig
from curate.jsonl_files import write_jsonl
from curate.plan import build_plan
from curate.run import run_pipeline
from curate.textsources import book_passages, news_texts
from tests.dedup.test_dedup_keep import sketch_file

FOOTER = "\n\nCopyright 2021 Classic Reads. All rights reserved. Privacy Policy | Terms of Use"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the module (run_pipeline leaves a Ray it did not start running)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def passages(shared: Path) -> list[str]:
    chosen = islice(book_passages(shared / "domains" / "books", 2500), 300)
    return [t for _, t in chosen if len(t.split()) >= 300 and "gutenberg" not in t.lower()][:24]


def chain(text: str) -> tuple[str, str, str]:
    """A; B = A's first 80% of words; C = B's last 80%: A~B and B~C pass 0.7, C~A does not."""
    words = text.split()
    b = words[: int(len(words) * 0.8)]
    return text, " ".join(b), " ".join(b[int(len(b) * 0.2) :])


def write_batches(folder: Path, passages: list[str]) -> tuple[str, str, str]:
    """(earlier batch for the index, this batch's web input, this batch's news input), as globs."""
    earlier = folder / "earlier"
    earlier.mkdir()
    write_jsonl(earlier / "e.jsonl.gz", [{"id": f"old{n}", "text": t} for n, t in enumerate(passages[:4])])
    a, b, c = chain(passages[10])
    web = [
        {"id": "copy-of-old0", "text": passages[0]},
        {"id": "edit-of-old1", "text": passages[1] + FOOTER},
        {"id": "x", "text": passages[5], "crawl_date": "2020-01-01T00:00:00Z"},
        {"id": "x-upper", "text": passages[5].upper(), "crawl_date": "2022-01-01T00:00:00Z"},
        {"id": "y", "text": passages[6]},
        {"id": "chain-a", "text": a},
        {"id": "chain-b", "text": b},
        {"id": "chain-c", "text": c},
        *({"id": f"web{n}", "text": t} for n, t in enumerate(passages[12:18])),
    ]
    news = list(islice(news_texts(), 12))
    other = [
        {"id": "x-again", "text": passages[5]},
        {"id": "y-footer", "text": passages[6] + FOOTER},
        {"id": "z", "text": passages[7]},
        {"id": "z-copy", "text": passages[7]},
        *({"id": f"news{n}", "text": t} for n, t in enumerate(news)),
    ]
    for name, docs in (("web", web), ("news", other)):
        (folder / name).mkdir()
        half = len(docs) // 2
        write_jsonl(folder / name / "s1.jsonl.gz", docs[:half])
        write_jsonl(folder / name / "s2.jsonl.gz", docs[half:])
    return (
        str(earlier / "*.jsonl.gz"),
        str(folder / "web" / "*.jsonl.gz"),
        str(folder / "news" / "*.jsonl.gz"),
    )


def config(inputs: list[tuple[str, str]], out: Path, dedup: dict[str, Any]) -> Any:
    raw = {
        "inputs": [{"path": path, "name": name, "domain": name} for path, name in inputs],
        "stages": [{"normalize": {}}],
        "dedup": dedup,
        "batch_docs": 8,
    }
    return resolve_paths(parse_config(raw), out.parent, str(out))


def files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for folder in ("corpus", "rejects")
        for p in sorted((out / folder).rglob("*.parquet"))
    }


def members(out: Path) -> pa.Table:
    tables = [pq.read_table(f) for f in member_files(out / STATE)]
    return pa.concat_tables(tables).sort_by([("source", "ascending"), ("id", "ascending")])


def segment(index: Path) -> pa.Table:
    runs = json.loads((index / "index.json").read_text(encoding="utf-8"))["segments"]
    return pq.read_table(index / "segments" / f"{runs[-1]['run']}.parquet")


def test_the_ray_path_gives_the_duckdb_paths_clusters_and_files(
    tmp_path: Path, passages: list[str], ray_cluster: None
) -> None:
    earlier, web, news = write_batches(tmp_path, passages)
    run_pipeline(
        config([(earlier, "web")], tmp_path / "out-earlier", {"index": str(tmp_path / "i")}), "local", 1
    )
    dedup = {"verify": "exact", "threshold": 0.7}
    outputs = {}
    for path, executor, extra in (("duckdb", "local", {}), ("ray", "ray", {"ray_min_documents": 0})):
        index = tmp_path / f"index-{path}"
        shutil.copytree(tmp_path / "i", index)
        out = tmp_path / path
        cfg = config([(web, "web"), (news, "news")], out, {**dedup, "index": str(index), **extra})
        outputs[path] = (out, index, run_pipeline(cfg, executor, 2, progress=False))

    (local, local_index, expected), (ray, ray_index, manifest) = outputs["duckdb"], outputs["ray"]
    assert manifest["dedup"]["global_path"] == "ray" and expected["dedup"]["global_path"] == "duckdb"
    assert "ray_min_documents (0)" in manifest["dedup"]["global_path_reason"]
    clustered = {m["id"]: (m["cluster"], m["reason"]) for m in members(local).to_pylist()}
    assert clustered["copy-of-old0"] == ("old0", "exact_duplicate")
    assert clustered["edit-of-old1"] == ("old1", "near_duplicate")
    assert clustered["x-upper"] == ("x", "exact_duplicate") and clustered["x-again"] == (
        "x",
        "exact_duplicate",
    )
    assert clustered["chain-b"] == ("chain-a", "near_duplicate") and "chain-c" not in clustered
    assert clustered["z-copy"] == ("z", "exact_duplicate")
    assert members(ray).equals(members(local))
    for key in (
        "documents",
        "candidate_pairs",
        "verified_pairs",
        "clusters",
        "exact_duplicate",
        "near_duplicate",
    ):
        assert manifest["dedup"][key] == expected["dedup"][key], key
    assert manifest["totals"] == expected["totals"]
    assert manifest["dedup"]["files"] == expected["dedup"]["files"] and manifest["dedup"]["files"]
    assert files(ray) == files(local)
    assert segment(ray_index).equals(segment(local_index))

    # A crash after the parts were applied but before the phase was marked done, with the clustering
    # lost: the rerun finds the same clusters (texts of removed copies now read from rejects/).
    state = ray / STATE
    (state / "result.json").unlink()
    (state / MEMBERS_DONE).unlink()
    plan = build_plan(
        config(
            [(web, "web"), (news, "news")], ray, {**dedup, "index": str(ray_index), "ray_min_documents": 0}
        )
    )
    again = run_dedup(plan, manifest["dedup"]["run"], "ray")
    assert again.clusters == manifest["dedup"]["clusters"] and again.global_path == "ray"
    assert members(ray).equals(members(local))
    assert files(ray) == files(local)


def test_a_small_run_stays_on_duckdb_under_the_ray_executor(
    tmp_path: Path, passages: list[str], ray_cluster: None
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "s.jsonl.gz", [{"id": f"p{n}", "text": t} for n, t in enumerate(passages[:3] * 2)])
    manifest = run_pipeline(config([(str(folder / "*.jsonl.gz"), "web")], tmp_path / "out", {}), "ray", 2)
    assert manifest["dedup"]["global_path"] == "duckdb"
    assert manifest["dedup"]["global_path_reason"] == "6 documents < dedup.ray_min_documents (2000000)"
    assert manifest["dedup"]["exact_duplicate"] == 3
    assert (tmp_path / "out" / STATE / "members.parquet").exists()


@pytest.mark.parametrize("verify", ["signature", "none"])
def test_keepers_chosen_in_a_component_are_choose_keepers_ones(
    tmp_path: Path, passages: list[str], verify: str
) -> None:
    """Without Ray: one group of sketches and verified edges through `_settle` gives the members
    choose_keepers gives. The index document I wins over A, B (A~B) and E whatever their quality; C
    (B~C, below the threshold against I) is clustered again with its copy D, and keeps it."""
    config = DedupConfig(threshold=0.7, verify=verify)
    a, b, c = chain(passages[10])
    docs = [
        {"id": "A", "text": a, "quality": 0.9},
        {"id": "B", "text": b, "quality": 0.5},
        {"id": "C", "text": c, "quality": 0.1},
        {"id": "D", "text": c.upper()},
        {"id": "E", "text": "Chapter one. " + a, "quality": 0.99},
    ]
    sketches = sketch_file(tmp_path / "run.parquet", docs, config)
    index_doc = pq.read_table(
        sketch_file(tmp_path / "raw.parquet", [{"id": "I", "text": a + " End."}], config)
    )
    segment = tmp_path / "segment.parquet"
    pq.write_table(index_doc.drop_columns(["source", "domain"]), segment)
    con = open_work_db(tmp_path / "work.duckdb", config)
    load_docs(con, [sketches], [segment])
    candidate_pairs(con, config)
    first, second, _ = verified_pairs(con, config, None)
    expected = choose_keepers(con, first, second, config).members
    nodes = pa.concat_tables([read_nodes(str(sketches), False), read_nodes(str(segment), True)])
    numbers = con.sql("SELECT doc FROM docs ORDER BY doc").fetchnumpy()["doc"]
    node_of = dict(zip(numbers, sorted(nodes["node"].to_pylist()), strict=True))  # nodes sort as docs
    con.close()
    edges = _link_rows(
        pa.chunked_array([pa.array([node_of[x] for x in first], pa.string())]),
        "edge",
        pa.chunked_array([pa.array([node_of[x] for x in second], pa.string())]),
    )
    group = pa.concat_tables([_sketch_rows(nodes), edges])
    group = group.add_column(0, "root", pa.array(["any"] * group.num_rows, pa.string()))
    members = _settle(group, config).sort_by([("source", "ascending"), ("id", "ascending")])
    assert members.equals(expected.cast(members.schema))
    fates = {m["id"]: (m["cluster"], m["reason"]) for m in members.to_pylist()}
    chained = {"A": ("I", "near_duplicate"), "B": ("I", "near_duplicate"), "E": ("I", "near_duplicate")}
    if verify == "signature":  # C and D are below 0.7 against I: a cluster of their own
        assert fates == chained | {"C": ("C", None), "D": ("C", "exact_duplicate")}
    else:
        assert fates == chained | {"C": ("I", "near_duplicate"), "D": ("I", "near_duplicate")}


def test_large_and_small_star_rounds_find_scipys_components(ray_cluster: None) -> None:
    """A 12-node path named in shuffled order (the worst shape for label propagation), a star, a cycle
    and random edges: every node ends labelled with the smallest node of its scipy component."""
    import random

    import ray.data

    rng = random.Random(7)
    names = [f"n{i:03d}" for i in range(80)]
    rng.shuffle(names)
    edges = [(names[i], names[i + 1]) for i in range(11)]  # a path
    edges += [(names[12], names[i]) for i in range(13, 20)]  # a star
    edges += [(names[i], names[20 + (i - 19) % 8]) for i in range(20, 28)]  # a cycle
    edges += [(rng.choice(names[28:]), rng.choice(names[28:])) for _ in range(30)]
    edges = [(u, v) for u, v in edges if u != v]
    rng.shuffle(edges)
    with sort_shuffles():  # a Dataset keeps the context it was made in
        dataset = ray.data.from_items([{"u": u, "v": v} for u, v in edges], override_num_blocks=4)
        labels = connected_components(dataset.materialize(), partitions=4).take_all()
    nodes, component = components(np.array([u for u, _ in edges]), np.array([v for _, v in edges]))
    smallest = {label: min(nodes[component == label]) for label in set(component.tolist())}
    expected = {str(node): smallest[label] for node, label in zip(nodes, component, strict=True)}
    assert {row["node"]: row["root"] for row in labels} == expected
    assert len(labels) == len(expected)
