"""Seeded fuzzing: mutated real shards of every format through the real `curate run` (a subprocess).

Byte flips, truncations, splices, zeroed and duplicated spans of small JSONL (plain, gzip, multi-frame
zstd), Parquet, WARC and WET shards derived from ../shared/data/web: the run must exit 0 without a
traceback or a hang, and the manifest must show every file fully read or covered by a reject. Thousands
of cases run in `curate bench fuzz`; here a few dozen, as one folder and a few files alone.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.fuzz_inputs import Case, build_seeds, make_cases, run_curate

SEED = 20261203
CASES = 44
ALONE = 4


@pytest.fixture(scope="module")
def cases(web: Path) -> list[Case]:
    seeds = build_seeds(web)
    made = make_cases(seeds, CASES, random.Random(SEED))
    assert {case.seed_name for case in made} == set(seeds), "every format is mutated"
    return made


def check_outcome(cases: list[Case], folder: Path) -> None:
    outcome = run_curate(cases, folder)
    assert outcome.exit_code == 0, outcome.stderr_tail
    assert not outcome.traceback, outcome.stderr_tail
    assert outcome.files == len(cases)
    assert outcome.unaccounted == []


def test_a_folder_of_mutated_shards_in_one_run(cases: list[Case], tmp_path: Path) -> None:
    check_outcome(cases[ALONE:], tmp_path)


@pytest.mark.parametrize("index", range(ALONE))
def test_a_mutated_shard_alone_in_its_run(cases: list[Case], tmp_path: Path, index: int) -> None:
    check_outcome([cases[index]], tmp_path)
