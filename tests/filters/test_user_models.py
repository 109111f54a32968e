"""Models trained on a user's own files through the real CLI (`curate models train-quality --positive
--negative`, `train-lm --text --lang`, `train-toxicity --labels`), then used per language in a real run.

The training files are derived at run time from ../shared/data into tmp_path (DCLM human labels split
into positive JSONL.gz and negative Parquet, and all of them as English LM text; Davidson tweets as a CSV);
the French LM reads two of the French books in place through a glob of plain-text files.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from curate.config import parse_config
from curate.errors import ConfigError
from curate.stages.registry import get_stage
from curate.textsources import news_texts
from filters.kenlm_build import KenLMBuildError, ensure_tools
from filters.kenlm_lm import load_kenlm, perplexities
from filters.langid_recipe import udhr_paragraphs
from filters.model_registry import find_model
from filters.perplexity import PerplexityParams
from filters.user_data import expand_glob, plain_text_documents
from tests.conftest import run_cli
from tests.core.helpers import read_parts, write_config

FRENCH_BOOKS = "langid/french_books"
TRAIN_BOOKS = "[2A]*.txt"  # 20000 lieues sous les mers, Ainsi parlait Zarathoustra; Candide stays unseen


def cli_json(*args: str) -> dict[str, Any]:
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def error_line(*args: str) -> str:
    """A user error through the CLI root in-process (no training runs before it): exit 2, one line."""
    from api.main import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    return line


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's training files, derived from the shared data."""
    folder = tmp_path_factory.mktemp("user-data")
    rows = [json.loads(line) for line in (shared / "quality" / "dclm_majority_data.jsonl").open()]
    with gzip.open(folder / "good.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"body": r["text"]}) + "\n" for r in rows if int(r["label"]) == 1)
    bad = [r["text"] for r in rows if int(r["label"]) == 0]
    pq.write_table(pa.table({"body": bad}), folder / "bad.parquet")
    with (shared / "toxicity" / "davidson_labeled_data.csv").open(newline="", encoding="utf-8") as source:
        tweets = list(islice(csv.DictReader(source), 3000))
    with (folder / "tweets.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["tweet", "class"])
        writer.writeheader()
        writer.writerows({"tweet": t["tweet"], "class": t["class"]} for t in tweets)
    with (folder / "english.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": r["text"]}) + "\n" for r in rows)
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def language_models(files: Path, home: Path, shared: Path) -> dict[str, dict[str, Any]]:
    try:
        ensure_tools(install_packages=False, log=lambda _: None)
    except KenLMBuildError as error:
        pytest.skip(f"KenLM's lmplz cannot be built on this machine: {error}")
    books = str(shared / FRENCH_BOOKS / TRAIN_BOOKS)
    return {
        "en": cli_json("models", "train-lm", "--text", str(files / "english.jsonl"), "--name", "lm-en",
                       "--lang", "en", "--order", "4", "--home", str(home)),
        "fr": cli_json("models", "train-lm", "--text", books, "--name", "lm-fr", "--lang", "fr",
                       "--order", "4", "--home", str(home)),
    }  # fmt: skip


@pytest.fixture(scope="module")
def quality_card(files: Path, home: Path, language_models: dict) -> dict[str, Any]:
    """Ensembled with the English LM trained here (standardised on the user's documents)."""
    return cli_json(
        "models", "train-quality", "--positive", str(files / "good*.gz"),
        "--negative", str(files / "bad.parquet"), "--text-field", "body", "--name", "q-en", "--lang", "en",
        "--lm", "lm-en", "--home", str(home),
    )  # fmt: skip


def test_quality_model_from_own_positives_and_negatives(files: Path, home: Path, quality_card: dict) -> None:
    assert quality_card["kind"] == "fasttext-quality"
    assert [(Path(e["path"]).name, e["documents"], e["sha256"]) for e in quality_card["data"]] == [
        ("good.jsonl.gz", 272, sha256(files / "good.jsonl.gz")),
        ("bad.parquet", 227, sha256(files / "bad.parquet")),
    ]
    metrics, params = quality_card["metrics"], quality_card["params"]
    assert metrics["positive_documents"] == 272 and metrics["negative_documents"] == 227
    assert metrics["held_out_documents"] + metrics["train_documents"] <= 499
    held = metrics["held_out"]
    assert held["roc_auc"] > 0.7 and held["f1"] > 0.7, held  # DCLM human labels are hard; chance is 0.5
    assert params["lang"] == "en" and params["test_percent"] == 20 and "blake2b" in params["split"]
    assert params["epoch"] == math.ceil(20_000 / metrics["train_examples"]) > 5  # more passes: a small set
    assert params["lm"] == "lm-en" and quality_card["extra"]["ensemble"]["lm-en"]["documents"] == 499
    listed = {row["name"]: row for row in cli_json("models", "list", "--home", str(home), "--json")}
    assert listed["q-en"]["metrics"] == {k: held[k] for k in ("precision", "recall", "f1", "roc_auc")}
    table = run_cli("models", "list", "--home", str(home)).stdout.splitlines()
    assert table[0].split() == ["name", "kind", "created", "metrics"]
    assert any(line.split()[:2] == ["q-en", "fasttext-quality"] for line in table[1:])


def test_toxicity_model_from_a_labels_csv(files: Path, home: Path) -> None:
    card = cli_json(
        "models", "train-toxicity", "--labels", str(files / "tweets.csv"), "--text-column", "tweet",
        "--label-column", "class", "--positive-label", "0", "--positive-label", "1", "--name", "tox-user",
        "--home", str(home),
    )  # fmt: skip
    params, metrics = card["params"], card["metrics"]
    assert params["label_rule"] == "class in ['0', '1'] -> toxic; any other value -> not toxic"
    assert sum(params["label_values"].values()) == metrics["rows"] == 3000
    assert metrics["toxic_rows"] == params["label_values"]["0"] + params["label_values"]["1"]
    assert card["data"][0]["sha256"] == sha256(files / "tweets.csv")
    assert metrics["held_out"]["roc_auc"] > 0.8, metrics["held_out"]


def test_language_models_record_their_language_and_files(shared: Path, language_models: dict) -> None:
    french = language_models["fr"]
    assert french["params"]["lang"] == "fr" and french["params"]["corpus"] == "user"
    books = sorted((shared / FRENCH_BOOKS).glob(TRAIN_BOOKS))
    assert [entry["sha256"] for entry in french["data"]] == [sha256(book) for book in books]
    assert sum(entry["documents"] for entry in french["data"]) == (
        french["metrics"]["train_documents"] + french["metrics"]["held_out_documents"]
    )
    assert 10 < french["metrics"]["held_out_ppl"] < 2000


def french_and_german(shared: Path) -> tuple[list[str], list[str]]:
    """Passages of Candide (not trained on) and the German UDHR, two documents each."""
    candide = (shared / FRENCH_BOOKS / "Candide.txt").read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in candide.split("\n\n") if len(p.strip()) > 400][20:24]
    german = udhr_paragraphs(shared / "langid" / "udhr2.zip")["deu"]
    return paragraphs, [" ".join(german[:10]), " ".join(german[10:20])]


def test_a_run_scores_each_language_with_its_own_model(
    tmp_path: Path, shared: Path, home: Path, language_models: dict, quality_card: dict
) -> None:
    english = list(islice(news_texts(), 4))
    french, german = french_and_german(shared)
    documents = {"en": english, "fr": french, "de": german}
    with (tmp_path / "mixed.jsonl").open("w", encoding="utf-8") as handle:
        for lang, texts in documents.items():
            handle.writelines(json.dumps({"id": f"{lang}{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    stages = [
        {"langid": {"min_score": 0.0}},
        {"perplexity": {"models": {"en": "lm-en", "fr": "lm-fr"}, "models_dir": str(home)}},
        {"quality": {"models": {"en": "q-en"}, "models_dir": str(home)}},
    ]
    config = {
        "inputs": [{"path": str(tmp_path / "mixed.jsonl")}],
        "stages": stages,
        "output": str(tmp_path / "out"),
    }
    done = run_cli("run", str(write_config(tmp_path, config)))
    assert done.returncode == 0, done.stderr
    assert "perplexity: one model per language (en=lm-en, fr=lm-fr)" in done.stderr
    assert "quality:no_model_for_<lang>" in done.stderr

    rows = {row["id"]: row for row in read_parts(tmp_path / "out" / "corpus").to_pylist()}
    assert {row["lang"] for row in rows.values()} == {"en", "fr", "de"}  # nothing dropped for its language
    for lang in ("en", "fr"):
        model = load_kenlm(str(find_model(f"lm-{lang}", home).path("model")))
        got = [rows[f"{lang}{i}"]["ppl"] for i in range(len(documents[lang]))]
        assert got == pytest.approx(perplexities(model, documents[lang]).tolist(), rel=1e-4), lang
    assert [rows[f"de{i}"]["ppl"] for i in range(2)] == [None, None]  # no German model: no score, kept
    assert all(rows[f"en{i}"]["ppl_bucket"] in ("head", "middle", "tail") for i in range(4))
    assert all(rows[f"de{i}"]["ppl_bucket"] is None for i in range(2))
    assert all(0 <= rows[f"en{i}"]["quality"] <= 1 for i in range(4))
    assert all(rows[f"{lang}{i}"]["quality"] is None for lang in ("fr", "de") for i in range(2))

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    stats = {stage["stage"]: stage["stats"] for stage in manifest["stages"]}
    assert stats["perplexity"]["perplexity:no_model_for_de"] == 2
    assert (
        stats["quality"]["quality:no_model_for_fr"] == 4 and stats["quality"]["quality:no_model_for_de"] == 2
    )
    assert len(manifest["warnings"]) == 2


def test_french_text_reads_better_under_the_french_model(
    shared: Path, home: Path, language_models: dict
) -> None:
    french, _ = french_and_german(shared)
    scores = {
        lang: perplexities(load_kenlm(str(find_model(f"lm-{lang}", home).path("model"))), french)
        for lang in ("en", "fr")
    }
    assert (scores["fr"] * 3 < scores["en"]).all(), scores


def test_per_language_params_are_checked_when_the_config_is_read(home: Path, language_models: dict) -> None:
    def perplexity(**params: Any) -> dict:
        return {
            "inputs": [{"path": "x.jsonl"}],
            "stages": [{"perplexity": {"models_dir": str(home), **params}}],
        }

    with pytest.raises(ConfigError, match=r"models.en: 'lm-fr' was trained on 'fr' text"):
        parse_config(perplexity(models={"en": "lm-fr"}))
    with pytest.raises(ConfigError, match="give `model`"):
        parse_config(perplexity(model="lm-en", models={"en": "lm-en"}))
    with pytest.raises(ConfigError, match="curate models train-lm --name lm-de"):
        parse_config(perplexity(models={"en": "lm-en", "de": "lm-de"}))
    # unset, `models` stays out of the params (and of the config hash of every existing config)
    assert "models" not in PerplexityParams(model="lm-en", models_dir=home).model_dump()


GOOD, BAD = ["--positive", "{d}/good.jsonl.gz"], ["--negative", "{d}/bad.parquet"]
TWEETS = ["train-toxicity", "--labels", "{d}/tweets.csv", "--text-column", "tweet"]
CLASSES = [*TWEETS, "--label-column", "class"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train-quality", "--positive", "{d}/none*.jsonl", *BAD],
         "error: --positive {d}/none*.jsonl matches no file"),
        (["train-quality", *GOOD, *BAD],
         "error: --positive: {d}/good.jsonl.gz has no readable document with text in field(s) text, content, "
         "raw_content; name the text field with --text-field"),
        (["train-quality", "--positive", "{d}/english.jsonl", "--negative", "{d}/few.jsonl"],
         "error: --negative gave 3 documents with at least 25 words; training needs at least 20 of each"),
        (TWEETS,
         "error: --labels {d}/tweets.csv has no column 'label' (it has: class, tweet); set --label-column"),
        (CLASSES, "error: column 'class' has values 0, 1, 2; say which mean toxic with --positive-label"),
        ([*CLASSES, "--positive-label", "0", "--positive-label", "1", "--positive-label", "2"],
         "error: every labelled row is toxic under the rule"),
        (["train-lm", "--text", "{d}/english.jsonl", "--name", "lm"], "error: --text needs --lang"),
        (["train-lm", "--lang", "fr"], "error: --lang: only used with --text; add --text or leave it out"),
        (["train-lm", "--text", "{d}/english.jsonl", "--name", "../lm", "--lang", "en"],
         "error: model name '../lm' is not valid"),
        (["train-quality", *GOOD, *BAD, "--name", "a/b"], "error: model name 'a/b' is not valid"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line_naming_the_fix(
    files: Path, home: Path, args: list[str], expected: str
) -> None:
    with (files / "few.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": " ".join(["word"] * 40)}) + "\n" for _ in range(3))
    line = error_line("models", *[arg.format(d=files) for arg in args], "--home", str(home))
    assert line.startswith(expected.format(d=files)), line


def test_models_by_language_without_a_lang_column_names_the_langid_stage(
    home: Path, language_models: dict
) -> None:
    stage = get_stage("perplexity")(PerplexityParams(models={"en": "lm-en"}, models_dir=home))
    stage.setup()
    batch = pa.table({"id": ["a"], "text": pa.array(["The committee met on Tuesday."], pa.large_string())})
    with pytest.raises(ConfigError, match="lack; put the langid stage before perplexity"):
        stage.process(batch)


def test_a_folder_stands_for_every_file_under_it(files: Path) -> None:
    (files / "deeper").mkdir(exist_ok=True)
    (files / "deeper" / "notes.txt").write_text("Une phrase.\n\nUne autre.", encoding="utf-8")
    found = expand_glob(str(files), "--text")
    assert (
        found == sorted(p for p in files.rglob("*") if p.is_file())
        and files / "deeper" / "notes.txt" in found
    )
    assert list(plain_text_documents(files / "deeper" / "notes.txt")) == [(0, "Une phrase.\nUne autre.")]


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_user_error_inside_a_worker_is_one_line(
    tmp_path: Path, home: Path, language_models: dict, executor: str
) -> None:
    """A worker's user error reaches the CLI as its own line: not as a broken pool, nor in Ray's words."""
    if executor == "ray":
        pytest.importorskip("ray")
    for shard in ("a", "b"):
        (tmp_path / f"{shard}.jsonl").write_text(json.dumps({"id": shard, "text": "A line of text."}) + "\n")
    config = {
        "inputs": [{"path": str(tmp_path / "*.jsonl")}],
        "stages": [{"perplexity": {"models": {"en": "lm-en"}, "models_dir": str(home)}}],  # no langid first
        "output": str(tmp_path / "out"),
    }
    done = run_cli("run", str(write_config(tmp_path, config)), "--executor", executor, "--workers", "2")
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "put the langid stage before perplexity" in last, last
    assert "Traceback" not in done.stderr
