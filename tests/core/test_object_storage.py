"""`curate run` with inputs, output and dedup index on an S3 server, through the real s3fs and pyarrow
clients: the same files as a local run, and a SIGKILLed run resumed on the object store equals a clean one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from curate.jsonl_files import write_jsonl
from curate.readers.batches import ShardSource, read_batches
from curate.readers.fields import FieldMap
from curate.readers.formats import infer_format
from curate.readers.records import ReadTally
from curate.storage import location
from curate.textsources import wikipedia_pages
from tests.conftest import REPO, run_cli
from tests.core.helpers import write_config
from tests.s3_server import S3Server

SHARDS = 8


def make_shards(folder: Path, repeat: int) -> None:
    """Real Wikipedia pages over several shards, some pages in two shards (duplicates across shards),
    plus a record without text per shard (a reject); plain, gzip and zstd files in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = list(wikipedia_pages())
    for index in range(SHARDS):
        chunk = (pages[index::SHARDS] + pages[(index + 1) % SHARDS :: SHARDS][:3]) * repeat
        documents = [
            {"text": text, "url": f"https://en.wikipedia.org/wiki/{index}-{n}"}
            for n, (_, text) in enumerate(chunk)
        ]
        documents.insert(len(documents) // 2, {"url": "https://example.org/none"})
        suffix = (".jsonl", ".jsonl.gz", ".jsonl.zst")[index % 3]
        write_jsonl(folder / f"shard-{index:03d}{suffix}", documents)


def pipeline(inputs: str, index: str) -> dict:
    return {
        "inputs": [{"path": inputs, "name": "wiki"}],
        "stages": [{"normalize": {}}, {"tag": {}}],
        "dedup": {"index": index},
        "batch_docs": 50,
    }


def download(server: S3Server, url: str, folder: Path) -> Path:
    s3fs.S3FileSystem(endpoint_url=server.endpoint).get(
        url.removeprefix("s3://") + "/", str(folder), recursive=True
    )
    return folder


def outputs(folder: Path) -> dict[str, bytes]:
    """Corpus and rejects parts by relative name: what a user of the corpus reads."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for sub in ("corpus", "rejects")
        for path in sorted((folder / sub).rglob("*.parquet"))
    }


@dataclass(frozen=True)
class Runs:
    folder: Path
    bucket: str
    remote_config: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Runs:
    """The same pipeline over the same shards: on local disk, and from and to the S3 server."""
    tmp_path = tmp_path_factory.mktemp("s3runs")
    shards = tmp_path / "shards"
    make_shards(shards, repeat=1)
    bucket = s3_server.bucket()
    s3_server.upload(shards, f"{bucket}/raw")
    local = write_config(tmp_path, pipeline(str(shards / "*.jsonl*"), str(tmp_path / "index")), "local.yaml")
    remote = write_config(tmp_path, pipeline(f"{bucket}/raw/*.jsonl*", f"{bucket}/index"), "remote.yaml")
    result = run_cli("run", str(local), "--out", str(tmp_path / "local"))
    assert result.returncode == 0, result.stderr
    result = run_cli("run", str(remote), "--out", f"{bucket}/out", env=s3_server.env)
    assert result.returncode == 0, result.stderr
    return Runs(tmp_path, bucket, remote)


def test_run_on_s3_equals_the_local_run(runs: Runs, s3_server: S3Server) -> None:
    bucket, tmp_path = runs.bucket, runs.folder
    fetched = download(s3_server, f"{bucket}/out", tmp_path / "fetched")
    local_files, remote_files = outputs(tmp_path / "local"), outputs(fetched)
    assert local_files and any(name.startswith("rejects/dedup-") for name in local_files), "dups were removed"
    assert remote_files == local_files
    manifest = json.loads((fetched / "manifest.json").read_text())
    assert manifest["totals"] == json.loads((tmp_path / "local" / "manifest.json").read_text())["totals"]
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint)
    assert fs.exists(f"{bucket.removeprefix('s3://')}/index/index.json"), "the index lives on the store too"
    shown = run_cli("inspect", f"{bucket}/out", "--json", env=s3_server.env)
    assert shown.returncode == 0, shown.stderr
    assert sum(row["docs"] for row in json.loads(shown.stdout)["domains"]) == manifest["totals"]["kept"]
    assert not [p for p in fs.find(bucket.removeprefix("s3://")) if p.endswith(".tmp")]

    # another config (so another run, not a repeat of this one) over the same documents
    later = write_config(
        tmp_path, {**pipeline(f"{bucket}/raw/*.jsonl*", f"{bucket}/index"), "batch_docs": 40}, "later.yaml"
    )
    again = run_cli("run", str(later), "--out", f"{bucket}/out2", env=s3_server.env)
    assert again.returncode == 0, again.stderr
    second = json.loads(fs.cat(f"{bucket.removeprefix('s3://')}/out2/manifest.json"))
    assert second["totals"]["kept"] == 0 and second["totals"]["duplicates"] > 0, "all were in the index"


def test_ray_run_with_its_global_phase_on_ray_writes_the_same_files_to_s3(
    runs: Runs,
    s3_server: S3Server,
) -> None:
    """Ray actors write the parts, and the global dedup phase (forced onto Ray) reads sketches and
    rewrites parts, all on the store: the files equal the local run's."""
    body = pipeline(f"{runs.bucket}/raw/*.jsonl*", f"{runs.bucket}/ray-index")
    body["dedup"]["ray_min_documents"] = 0
    config = write_config(runs.folder, body, "ray.yaml")
    out = f"{runs.bucket}/ray-out"
    result = run_cli(
        "run", str(config), "--out", out, "--executor", "ray", "--workers", "2", env=s3_server.env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fetched = download(s3_server, out, runs.folder / "ray-fetched")
    assert json.loads((fetched / "manifest.json").read_text())["dedup"]["global_path"] == "ray"
    assert outputs(fetched) == outputs(runs.folder / "local")


def test_mixture_from_an_s3_corpus_equals_one_from_its_local_twin(runs: Runs, s3_server: S3Server) -> None:
    def spec(corpus: str, name: str) -> Path:
        body = {
            "corpora": [corpus],
            "seed": 3,
            "budget": 20_000,
            "tokenizer": {"chars_per_token": 4.0},
            "domains": {"web": {"weight": 1.0}},
        }
        return write_config(runs.folder, body, name)

    mixes = {}
    for name, corpus in (("local", str(runs.folder / "local")), ("remote", f"{runs.bucket}/out")):
        out = runs.folder / f"mix-{name}"
        result = run_cli("mix", str(spec(corpus, f"{name}-mix.yaml")), "--out", str(out), env=s3_server.env)
        assert result.returncode == 0, result.stderr
        mixes[name] = {p.name: p.read_bytes() for p in sorted(out.glob("part-*.parquet"))}
    assert mixes["remote"] == mixes["local"] and mixes["local"]

    refused = run_cli("mix", str(spec(f"{runs.bucket}/out", "s3-out.yaml")), "--out", f"{runs.bucket}/mix")
    assert refused.returncode != 0 and "local folder" in refused.stderr.strip().splitlines()[-1]


def test_sigkill_on_s3_then_rerun_equals_a_clean_run(tmp_path: Path, s3_server: S3Server) -> None:
    shards = tmp_path / "shards"
    make_shards(shards, repeat=5)
    bucket = s3_server.bucket()
    s3_server.upload(shards, f"{bucket}/raw")
    config = write_config(tmp_path, {**pipeline(f"{bucket}/raw/*.jsonl*", ""), "dedup": {}})

    def start(out: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "api.main", "run", str(config), "--out", out, "--workers", "2"]
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=s3_server.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    assert start(f"{bucket}/clean").wait(timeout=600) == 0
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint, use_listings_cache=False)
    records = f"{bucket.removeprefix('s3://')}/killed/_state/shards"
    process = start(f"{bucket}/killed")
    deadline = time.time() + 300
    while time.time() < deadline and len(fs.glob(f"{records}/*.json")) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if len(fs.glob(f"{records}/*.json")) >= SHARDS:
        pytest.fail("the run finished before it could be killed; make the shards bigger")

    rerun = start(f"{bucket}/killed")
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode() if rerun.stderr else ""
    clean = outputs(download(s3_server, f"{bucket}/clean", tmp_path / "clean"))
    killed = outputs(download(s3_server, f"{bucket}/killed", tmp_path / "killed"))
    assert killed == clean and clean


def test_every_format_reads_the_same_from_the_store(tmp_path: Path, web: Path, s3_server: S3Server) -> None:
    """Plain, gzip and zstd JSONL, Parquet, WARC and WET: the same documents and rejects through s3fs
    (no file descriptor: the zstd frame walk and the readers' line limits work on a buffered object)."""
    folder = tmp_path / "files"
    folder.mkdir()
    pages = [
        {"text": text, "url": f"https://en.wikipedia.org/wiki/{n}"}
        for n, (_, text) in enumerate(wikipedia_pages())
    ]
    write_jsonl(folder / "pages.jsonl.zst", pages[:40])
    pq.write_table(pa.Table.from_pylist(pages[40:80]), folder / "pages.parquet")
    for name in (
        "dj_the-pile-nih-refined.jsonl",
        "c4_theguardian.jsonl.gz",
        "whirlwind.warc.gz",
        "whirlwind.warc.wet.gz",
    ):
        shutil.copyfile(web / name, folder / name)  # into the test's tmp folder only, to upload
    bucket = s3_server.bucket()
    s3_server.upload(folder, f"{bucket}/files")
    for path in sorted(folder.iterdir()):
        fmt = infer_format(path)
        assert fmt is not None
        tallies, tables = [], []
        for where in (path, location(f"{bucket}/files/{path.name}")):
            tally = ReadTally()
            batches = list(
                read_batches(ShardSource(where, f"x/{path.name}", fmt, FieldMap()), 50, 1 << 26, tally)
            )
            tables.append(
                [pa.concat_tables([b.docs for b in batches]), pa.concat_tables([b.rejects for b in batches])]
            )
            tallies.append(tally.figures())
        assert tables[0][0].num_rows > 0, path.name
        assert tables[1] == tables[0], path.name
        assert tallies[1] == tallies[0] and tally.problem() is None, path.name
