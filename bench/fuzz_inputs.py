"""`curate bench fuzz`: mutated real shards of every input format through the real `curate run`.

Why: a reader that crashes on a flipped bit ends a whole run, and one that stops quietly loses records
while the accounting still balances. Small shards of every format (JSONL plain, gzip and multi-frame
zstd, multi-row-group Parquet, WARC, WET) are derived at run time from ../shared/data/web, then mutated
with a seeded generator: byte flips, truncations, splices (a span cut out), zeroed spans and duplicated
spans. Mutants go through `python -m api.main run` in a subprocess with a timeout, most of them as a
folder per run, some one file per run. A case fails on a traceback, a hang (the timeout), a non-zero
exit, or a file the manifest does not show fully accounted for (see ReadTally.problem).
"""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
import zstandard
from fastwarc.warc import ArchiveIterator

from curate.errors import ConfigError
from curate.readers.records import ReadTally
from curate.textsources import shared_data_dir

MUTATIONS = ("flip", "truncate", "splice", "zero", "duplicate")
RUN_TIMEOUT = 300.0  # seconds for one `curate run` of a folder of small files; only a hang comes near it
JSONL_LINES = 12


@dataclass
class Case:
    name: str
    data: bytes
    seed_name: str
    mutation: str


@dataclass
class RunOutcome:
    exit_code: int | None  # None: killed at the timeout
    traceback: bool
    files: int = 0  # inputs in the manifest
    unaccounted: list[str] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    stderr_tail: str = ""


def build_seeds(web: Path) -> dict[str, bytes]:
    """Small valid shards of every format, named so `curate run` infers the format from the name."""
    lines = (web / "dolma_cc_en_head-0091.jsonl").read_bytes().splitlines(keepends=True)[:JSONL_LINES]
    c4 = gzip.decompress((web / "c4-sample.01.json.gz").read_bytes()).splitlines(keepends=True)
    warc = gzip.decompress((web / "dolma_sample-0000.warc.gz").read_bytes())
    return {
        "plain.jsonl": b"".join(lines),
        "gzip.jsonl.gz": gzip.compress(b"".join(c4)),
        "zstd.jsonl.zst": b"".join(
            zstandard.ZstdCompressor().compress(b"".join(c4[i : i + 4])) for i in (0, 4, 8)
        ),
        "rows.parquet": _parquet_seed(lines),
        "web.warc.gz": _warc_seed(warc, records=8),
        "web.warc": _first_records(warc, 5),
        "text.warc.wet.gz": (web / "whirlwind.warc.wet.gz").read_bytes(),
    }


def _parquet_seed(lines: list[bytes]) -> bytes:
    """Six row groups, with a timestamp and an integer column beside the text (values flips can break)."""
    records = [json.loads(line) for line in lines]
    table = pa.table(
        {
            "id": [r["id"] for r in records],
            "text": [r["text"] for r in records],
            "added": pa.array([1_600_000_000_000_000 + i for i in range(len(records))], pa.timestamp("us")),
            "n": list(range(len(records))),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=2)
    return sink.getvalue()


def _first_records(warc: bytes, records: int) -> bytes:
    starts = [r.stream_pos for r in ArchiveIterator(io.BytesIO(warc), parse_http=False)]
    return warc[: starts[records]] if len(starts) > records else warc


def _warc_seed(warc: bytes, records: int) -> bytes:
    """One gzip member per record, as crawlers write them."""
    starts = [r.stream_pos for r in ArchiveIterator(io.BytesIO(warc), parse_http=False)][: records + 1]
    return b"".join(gzip.compress(warc[a:b]) for a, b in zip(starts, starts[1:], strict=False))


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.choice(MUTATIONS)
    size = len(data)
    start = rng.randrange(size)
    span = rng.randint(1, max(1, min(size - start, rng.choice((4, 64, 1024)))))
    if kind == "flip":
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(size)] ^= 1 << rng.randrange(8)
        return bytes(mutated), kind
    if kind == "truncate":
        return data[:start], kind
    if kind == "splice":
        return data[:start] + data[start + span :], kind
    if kind == "zero":
        return data[:start] + bytes(span) + data[start + span :], kind
    return data[: start + span] + data[start : start + span] + data[start + span :], kind


def make_cases(seeds: dict[str, bytes], count: int, rng: random.Random) -> list[Case]:
    names = sorted(seeds)
    cases = []
    for index in range(count):
        seed_name = names[index % len(names)]
        data, kind = mutate(seeds[seed_name], rng)
        cases.append(Case(f"c{index:05d}-{kind}-{seed_name}", data, seed_name, kind))
    return cases


def run_curate(cases: list[Case], folder: Path, timeout: float = RUN_TIMEOUT) -> RunOutcome:
    """One real `curate run` over the cases written into `folder/in`."""
    inputs = folder / "in"
    inputs.mkdir(parents=True)
    for case in cases:
        (inputs / case.name).write_bytes(case.data)
    # mutants are garbage on purpose: one that reads as nothing must be rejects, not a refused input
    fuzz_input = {"path": str(inputs / "*"), "name": "fuzz", "allow_unreadable": True}
    config = {"inputs": [fuzz_input], "stages": [{"normalize": {}}]}
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [sys.executable, "-m", "api.main", "run", str(folder / "pipeline.yaml"), "--out"]
    command.append(str(folder / "out"))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else ""
        return RunOutcome(None, "Traceback" in stderr, stderr_tail=stderr[-2000:])
    outcome = RunOutcome(done.returncode, "Traceback" in done.stderr, stderr_tail=done.stderr[-2000:])
    manifest_path = folder / "out" / "manifest.json"
    if done.returncode == 0 and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        outcome.files = len(manifest["inputs"])
        outcome.unaccounted = unaccounted_inputs(manifest)
        outcome.reasons = Counter(manifest["stages"][0]["dropped"])
    return outcome


def unaccounted_inputs(manifest: dict[str, Any]) -> list[str]:
    """Inputs the manifest does not show fully read or covered by a reject, with why."""
    problems = []
    for entry in manifest["inputs"]:
        problem = ReadTally.from_figures(entry).problem()
        if problem is None and entry["records_parsed"] != entry["read"]:
            problem = f"{entry['records_parsed']} records parsed but {entry['read']} counted as read"
        if problem is not None:
            problems.append(f"{entry['source']}: {problem}")
    return problems


def fuzz(cases: int, seed: int, files_per_run: int = 40, single_runs: int = 5) -> dict[str, Any]:
    """`cases` mutants: `single_runs` of them one per run, the rest in folders of `files_per_run`."""
    web = shared_data_dir()
    if web is None:
        raise ConfigError("../shared/data is absent (set CURATE_SHARED_DATA to point at it)")
    rng = random.Random(seed)
    all_cases = make_cases(build_seeds(web / "web"), cases, rng)
    groups = [[case] for case in all_cases[:single_runs]]
    rest = all_cases[single_runs:]
    groups += [rest[i : i + files_per_run] for i in range(0, len(rest), files_per_run)]
    started = time.perf_counter()
    totals = {"tracebacks": 0, "hangs": 0, "failed_runs": 0, "unaccounted_files": 0}
    reasons: Counter = Counter()
    failures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="curate-fuzz-") as tmp:
        for number, group in enumerate(groups):
            outcome = run_curate(group, Path(tmp) / f"run{number:04d}")
            totals["tracebacks"] += outcome.traceback
            totals["hangs"] += outcome.exit_code is None
            totals["failed_runs"] += outcome.exit_code != 0
            totals["unaccounted_files"] += len(outcome.unaccounted)
            reasons.update(outcome.reasons)
            if outcome.exit_code != 0 or outcome.unaccounted:
                failures.append(
                    {
                        "cases": [c.name for c in group],
                        "exit": outcome.exit_code,
                        "unaccounted": outcome.unaccounted,
                        "stderr_tail": outcome.stderr_tail,
                    }
                )
    return {
        "cases": cases,
        "seed": seed,
        "runs": len(groups),
        "by_format": dict(sorted(Counter(c.seed_name for c in all_cases).items())),
        "by_mutation": dict(sorted(Counter(c.mutation for c in all_cases).items())),
        **totals,
        "reject_reasons": dict(sorted(reasons.items())),
        "seconds": round(time.perf_counter() - started, 1),
        "failures": failures[:20],
    }


if __name__ == "__main__":
    print(json.dumps(fuzz(int(sys.argv[1]), int(sys.argv[2])), indent=2))
