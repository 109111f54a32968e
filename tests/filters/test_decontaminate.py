"""decontaminate: real GSM8K test questions and WikiText-2 lines planted in real web documents are found
(dropped or annotated with the exact n-gram count), the clean web documents are not, and the eval sets
reach the workers as hashes (a Ray run succeeds after the files are gone). Every eval file is copied from
../shared/data into a tmp folder at run time."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.config import load_config, parse_config
from curate.dedup import shingles
from curate.dedup.shingles import normalize_words
from curate.errors import ConfigError
from curate.paths import PathField, confined_paths
from curate.run import run_pipeline
from curate.stages.base import StageResult
from filters.decontaminate import COUNT_COLUMN, SET_COLUMN, Decontaminate, DecontaminateParams, NgramTable
from tests.conftest import run_cli
from tests.core.helpers import read_parts, write_config

WEB_FILES = ("dolma_cc_en_head-0091.jsonl", "dolma_cc_en_head-0174.jsonl", "c4-sample.01.json.gz")


@pytest.fixture(scope="module")
def evals(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evals")
    for name in ("gsm8k_test.jsonl", "wikitext2_test.txt"):
        shutil.copy(shared / "domains" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def gsm8k(evals: Path) -> list[dict]:
    return [
        json.loads(line) for line in (evals / "gsm8k_test.jsonl").read_text(encoding="utf-8").splitlines()
    ]


@pytest.fixture(scope="module")
def web_docs(web: Path) -> list[str]:
    docs = []
    for name in WEB_FILES:
        with (gzip.open if name.endswith(".gz") else open)(web / name, "rt", encoding="utf-8") as handle:
            docs += [json.loads(line)["text"] for line in handle]
    return docs


def sets(evals: Path) -> list[dict]:
    return [
        {"name": "gsm8k", "path": str(evals / "gsm8k_test.jsonl"), "fields": ["question", "answer"]},
        {"name": "wikitext2", "path": str(evals / "wikitext2_test.txt")},
    ]


def stage(evals: Path, **params: object) -> Decontaminate:
    built = Decontaminate(DecontaminateParams.model_validate({"sets": sets(evals), **params}))
    built.setup()
    return built


def plant(doc: str, text: str) -> str:
    middle = len(doc) // 2
    return f"{doc[:middle]} {text} {doc[middle:]}"


def ngram_count(text: str, n: int = 13) -> int:
    return len(normalize_words(unicodedata.normalize("NFKC", text))) - n + 1


def run(stage: Decontaminate, texts: list[str]) -> StageResult:
    return stage.process(pa.table({"text": pa.array(texts, pa.large_string())}))


def test_planted_questions_are_dropped_naming_the_set_and_clean_web_documents_kept(
    evals: Path, gsm8k: list[dict], web_docs: list[str]
) -> None:
    questions = [gsm8k[0]["question"], gsm8k[500]["question"], gsm8k[1318]["question"]]
    disguised = [
        questions[0],
        "  ".join(questions[1].upper().split()).replace("?", " ?!"),  # case, spacing, punctuation
        questions[2].translate({ord(d): ord(d) - ord("0") + 0xFF10 for d in "0123456789"}),  # fullwidth: NFKC
    ]
    docs = list(web_docs)
    for at, text in zip((3, 12, 25), disguised, strict=True):
        docs[at] = plant(docs[at], text)
    result = run(stage(evals), docs)
    reasons = result.drop_reason.to_pylist()
    assert {i: r for i, r in enumerate(reasons) if r} == dict.fromkeys((3, 12, 25), "decontaminate:gsm8k")
    assert result.stats == {"decontaminate:gsm8k": 3, "decontaminate:wikitext2": 0}
    counts = result.table.column(COUNT_COLUMN).to_pylist()
    assert [counts[i] for i in (3, 12, 25)] == [ngram_count(q) for q in questions]
    assert sum(counts) == sum(ngram_count(q) for q in questions), "no clean web n-gram matches"


def test_annotate_names_the_set_counts_ngrams_and_drops_nothing(
    evals: Path, gsm8k: list[dict], web_docs: list[str]
) -> None:
    lines = (evals / "wikitext2_test.txt").read_text(encoding="utf-8").splitlines()
    paragraph = " ".join(max(lines[:40], key=len).split()[:70])
    answer = gsm8k[7]["answer"]
    docs = [plant(web_docs[0], answer), plant(web_docs[1], paragraph), web_docs[2]]
    result = run(stage(evals, mode="annotate"), docs)
    assert result.drop_reason is None
    assert result.table.column(SET_COLUMN).to_pylist() == ["gsm8k", "wikitext2", None]
    assert result.table.column(COUNT_COLUMN).to_pylist() == [ngram_count(answer), ngram_count(paragraph), 0]
    # a threshold above the count: nothing is contaminated, the count is still reported
    strict = run(stage(evals, mode="annotate", min_matches=ngram_count(answer) + 1), docs[:1])
    assert strict.table.column(SET_COLUMN).to_pylist() == [None]
    assert strict.table.column(COUNT_COLUMN).to_pylist() == [ngram_count(answer)]
    assert strict.stats["decontaminate:gsm8k"] == 0
    longest = plant(max(web_docs, key=len), answer)
    share = ngram_count(answer) / ngram_count(longest)  # of the document's own n-grams
    at_share = run(stage(evals, min_fraction=share), [longest])
    above = run(stage(evals, min_fraction=share + 0.001), [longest])
    assert at_share.drop_reason.to_pylist() == ["decontaminate:gsm8k"]
    assert above.drop_reason.to_pylist() == [None]


def test_short_eval_texts_match_whole_and_shorter_ones_are_ignored(
    evals: Path, gsm8k: list[dict], web_docs: list[str]
) -> None:
    words = {i: len(normalize_words(unicodedata.normalize("NFKC", r["answer"]))) for i, r in enumerate(gsm8k)}
    short = gsm8k[next(i for i, w in words.items() if 8 <= w < 13)]["answer"]  # 11 words: one 11-gram
    heading = " = Robert <unk> = "  # WikiText-2's first heading: 2 words, too short to be evidence
    cut = " ".join(normalize_words(short)[1:])
    docs = [plant(web_docs[0], short), plant(web_docs[1], heading), plant(web_docs[2], cut), short]
    result = run(stage(evals, mode="annotate"), docs)
    assert result.table.column(SET_COLUMN).to_pylist() == ["gsm8k", None, None, "gsm8k"]
    assert result.table.column(COUNT_COLUMN).to_pylist() == [1, 0, 0, 1]


def test_a_long_document_counts_questions_across_its_window_cuts(
    evals: Path, gsm8k: list[dict], web_docs: list[str]
) -> None:
    question = gsm8k[0]["question"]  # "Janet’s": NFKC'd window by window
    filler = " ".join(d.encode("ascii", "ignore").decode() for d in web_docs)
    text = ""
    for cut in (1 << 20, 2 << 20):  # a window ends at the first separator after each MiB of bytes
        text += (filler * 40)[: cut - len(text.encode()) - 60] + " " + question + " "
    text += filler[:5000] + " " + question
    data, planted = text.encode(), question.encode()
    cuts = np.cumsum([w.size for w in shingles._byte_windows(np.frombuffer(data, np.uint8), 1 << 20)])[:-1]
    starts = [found.start() for found in re.finditer(re.escape(planted), data)]
    assert len(cuts) == 2 and all(any(s < c < s + len(planted) for s in starts) for c in cuts)
    result = run(stage(evals, mode="annotate"), [text, web_docs[0]])
    assert result.table.column(COUNT_COLUMN).to_pylist() == [3 * ngram_count(question), 0]


def test_eval_sets_from_parquet_fields_and_globs(evals: Path, gsm8k: list[dict], tmp_path: Path) -> None:
    pq.write_table(pa.table({"question": [r["question"] for r in gsm8k[:100]]}), tmp_path / "part-0.parquet")
    params = {"sets": [{"name": "gsm8k-q", "path": str(tmp_path / "*.parquet"), "fields": ["question"]}]}
    built = Decontaminate(DecontaminateParams.model_validate({**params, "mode": "annotate"}))
    built.setup()
    result = run(built, [gsm8k[99]["question"], gsm8k[99]["answer"], gsm8k[100]["question"]])
    assert result.table.column(SET_COLUMN).to_pylist() == ["gsm8k-q", None, None]


def test_lookup_table_agrees_with_isin() -> None:
    rng = np.random.default_rng(7)
    for size in (0, 1, 3, 1000, 50_000):
        stored = rng.integers(0, 2**64 - 1, size, dtype=np.uint64)
        queries = np.concatenate([stored[::3], rng.integers(0, 2**64 - 1, 20_000, dtype=np.uint64)])
        assert np.array_equal(NgramTable.build(stored).contains(queries), np.isin(queries, stored)), size


def pipeline(folder: Path, evals: Path, docs: list[str], set_path: str | None = None) -> Path:
    """Two input files, so two local workers (spawned processes) each get a shard and the pickled stage."""
    for shard in (0, 1):
        lines = (json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs) if i % 2 == shard)
        (folder / f"in-{shard}.jsonl").write_text("".join(lines), encoding="utf-8")
    eval_sets = sets(evals)
    eval_sets[0]["path"] = set_path or eval_sets[0]["path"]
    config = {
        "inputs": [{"path": str(folder / "in-*.jsonl")}],
        "stages": [{"decontaminate": {"sets": eval_sets}}],
    }
    return write_config(folder, config)


def test_cli_run_drops_planted_documents_and_counts_them_per_set_in_the_manifest(
    evals: Path, gsm8k: list[dict], web_docs: list[str], tmp_path: Path
) -> None:
    docs = [plant(d, gsm8k[i]["question"]) if i in (2, 9) else d for i, d in enumerate(web_docs)]
    config = pipeline(tmp_path, evals, docs)
    result = run_cli("run", str(config), "--out", str(tmp_path / "out"), "--workers", "2")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    entry = next(s for s in manifest["stages"] if s["stage"] == "decontaminate")
    assert entry["dropped"] == {"decontaminate:gsm8k": 2}
    assert entry["stats"] == {"decontaminate:gsm8k": 2, "decontaminate:wikitext2": 0}
    assert manifest["totals"]["kept"] == len(docs) - 2
    recorded = manifest["config"]["stages"][0]["params"]["sets"][0]["sha256"]
    assert recorded == hashlib.sha256((evals / "gsm8k_test.jsonl").read_bytes()).hexdigest()
    rejects = read_parts(tmp_path / "out/rejects")
    assert rejects.column("id").to_pylist() == ["d2", "d9"]
    assert set(rejects.column("reject_reason").to_pylist()) == {"decontaminate:gsm8k"}


def test_a_missing_set_file_is_one_line_naming_it_before_work_starts(
    evals: Path, web_docs: list[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "gsm8k_tset.jsonl")
    result = run_cli(
        "run", str(pipeline(tmp_path, evals, web_docs[:2], missing)), "--out", str(tmp_path / "out")
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"eval set 'gsm8k': {missing} matches no local file; fix `path:`" in result.stderr
    assert not (tmp_path / "out").exists()
    wrong_field = sets(evals)[:1]
    wrong_field[0]["fields"] = ["problem"]
    config = {
        "inputs": [{"path": str(tmp_path / "in-*.jsonl")}],
        "stages": [{"decontaminate": {"sets": wrong_field}}],
    }
    with pytest.raises(ConfigError, match="gives no text fields \\['problem'\\].*fix `fields:`"):
        parse_config(config)
    lines = (evals / "wikitext2_test.txt").read_text(encoding="utf-8").splitlines()
    headings = [line for line in lines if line.strip().startswith("= ") and len(line.split()) < 10]
    (tmp_path / "headings.txt").write_text("\n".join(headings), encoding="utf-8")  # " = Robert <unk> = "...
    config["stages"] = [
        {"decontaminate": {"sets": [{"name": "heads", "path": str(tmp_path / "headings.txt")}]}}
    ]
    with pytest.raises(ConfigError, match="eval set 'heads' has no text of 8\\+ words; check `fields:`"):
        parse_config(config)
    pinned = sets(evals)[:1]
    pinned[0]["sha256"] = "0" * 64  # the digest a config was written with; the file is another
    config["stages"] = [{"decontaminate": {"sets": pinned}}]
    with pytest.raises(ConfigError, match="eval set 'gsm8k': files differ from the pinned `sha256:`"):
        parse_config(config)


def test_set_paths_are_confined_before_any_file_is_read(evals: Path) -> None:
    seen = []

    def refuse(value: str, marker: PathField) -> str:
        seen.append((value, marker))
        raise ValueError(f"{value} is outside the data roots")

    with confined_paths(refuse), pytest.raises(ValueError, match="outside the data roots") as error:
        DecontaminateParams.model_validate({"sets": sets(evals)[:1]})
    assert seen == [(str(evals / "gsm8k_test.jsonl"), PathField(glob=True))]
    assert "matches no file" not in str(error.value)


def test_the_service_reads_set_paths_from_its_data_root_and_refuses_others(
    evals: Path, tmp_path: Path
) -> None:
    from api.kinds.curate_kind import load_pipeline
    from api.security import PathPolicy

    policy = PathPolicy([evals])
    shutil.copy(evals / "gsm8k_test.jsonl", tmp_path / "elsewhere.jsonl")
    config = {"inputs": [{"path": "in-*.jsonl"}], "output": str(evals / "out")}
    for path, fine in (("gsm8k_test.jsonl", True), (str(tmp_path / "elsewhere.jsonl"), False)):
        config["stages"] = [
            {"decontaminate": {"sets": [{"name": "g", "path": path, "fields": ["question"]}]}}
        ]
        if fine:
            assert load_pipeline(config, policy).stages[0].params.sets[0].path == str(evals / path)
            continue
        with pytest.raises(ValueError, match="sets.0.path: .* is outside the data roots") as refused:
            load_pipeline(config, policy)
        assert "sha256" not in str(refused.value) and "no local file" not in str(refused.value)


def test_ray_workers_use_the_hashes_made_on_the_driver(
    evals: Path, gsm8k: list[dict], web_docs: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    own = tmp_path / "gsm8k.jsonl"
    shutil.copy(evals / "gsm8k_test.jsonl", own)
    docs = [plant(d, gsm8k[i]["question"]) if i == 4 else d for i, d in enumerate(web_docs[:10])]
    config = load_config(pipeline(tmp_path, evals, docs, str(own)), out=str(tmp_path / "out"))
    own.unlink()  # the actors cannot read it: they must use what the driver hashed
    manifest = run_pipeline(config, "ray", 1, progress=False)
    entry = next(s for s in manifest["stages"] if s["stage"] == "decontaminate")
    assert entry["dropped"] == {"decontaminate:gsm8k": 1}
    assert read_parts(tmp_path / "out/rejects").column("id").to_pylist() == ["d4"]
