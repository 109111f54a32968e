"""Every user error of a mixture is one clear line, raised before any output exists."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from mixtest_corpus import MixCorpus, build_mix_corpus, manifest_of
from typer.testing import CliRunner

from mixers.errors import MixError, MixWarning
from mixers.sampler import build_mixture
from mixers.spec import load_spec, parse_spec
from mixers.tokens import SIDECAR_DIR


@pytest.fixture(scope="session")
def mix_corpus(tmp_path_factory: pytest.TempPathFactory) -> MixCorpus:
    return build_mix_corpus(tmp_path_factory.getbasetemp() / "mix-corpus")


def refused(spec: dict, out: Path, **kwargs: object) -> str:
    """The error of building `spec`, checked to be one line and to leave no output behind."""
    with pytest.raises(MixError) as error:
        build_mixture(parse_spec(spec), out, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))
    return message


def test_negative_weight(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    spec = mix_corpus.spec(domains={"wiki": 0.75, "news": -0.25})
    with pytest.raises(
        MixError, match=r"^spec: domains\.news: weight -0\.25 is negative; weights must be >= 0$"
    ):
        parse_spec(spec)


def test_weights_not_summing_to_one_are_normalised_with_a_notice(
    mix_corpus: MixCorpus, tmp_path: Path
) -> None:
    spec = mix_corpus.spec(domains={"wiki": 0.9, "news": 0.3})
    with pytest.warns(MixWarning, match=r"weights sum to 1\.2, not 1 \(wiki=0\.9, news=0\.3\); normalised"):
        manifest = build_mixture(parse_spec(spec), tmp_path / "mix")
    assert manifest["domains"]["wiki"]["requested_tokens"] == 150_000
    assert manifest["domains"]["news"]["requested_tokens"] == 50_000
    assert manifest["notes"][0].startswith("weights sum to 1.2")


def test_weights_not_summing_to_one_are_refused_when_strict(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    spec = mix_corpus.spec(domains={"wiki": 0.9, "news": 0.3})
    message = refused(spec, tmp_path / "mix", strict=True)
    assert message == "weights sum to 1.2, not 1 (wiki=0.9, news=0.3); fix them or drop --strict to normalise"
    assert refused({**spec, "strict": True}, tmp_path / "mix") == message


def test_unknown_domain_lists_the_known_ones(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    message = refused(mix_corpus.spec(domains={"wiki": 0.5, "books": 0.5}), tmp_path / "mix")
    assert message == "domains: unknown domain 'books'; the corpora hold: code, news, wiki"


def test_budget_beyond_tokens_times_epochs_gives_numbers_per_domain(
    mix_corpus: MixCorpus, tmp_path: Path
) -> None:
    spec = mix_corpus.spec(budget=10_000_000, domains={"wiki": 0.5, "news": {"weight": 0.5, "max_epochs": 2}})
    message = refused(spec, tmp_path / "mix")
    numbers = re.findall(
        r"(\w+) needs ([\d,]+) but has ([\d,]+) tokens x max_epochs (\d+) = ([\d,]+)", message
    )
    assert [(d, need, epochs) for d, need, _, epochs, _ in numbers] == [
        ("wiki", "5,000,000", "1"),
        ("news", "5,000,000", "2"),
    ]
    fits = mix_corpus.spec(budget=100_000, domains={"wiki": 0.5, "news": 0.5})
    available = build_mixture(parse_spec(fits), tmp_path / "fits")["domains"]
    for domain, _, has, epochs, cap in numbers:
        assert int(has.replace(",", "")) == available[domain]["available_tokens"]
        assert int(cap.replace(",", "")) == available[domain]["available_tokens"] * int(epochs)
    assert message.startswith("budget of 10,000,000 tokens is more than the corpora hold: ")


def test_exact_budget_check_runs_before_counting_tokens(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    """With no cached counts, a hopeless budget is refused from byte counts, before the tokenizer pass."""
    copy = tmp_path / "corpus"
    shutil.copytree(mix_corpus.out, copy, ignore=shutil.ignore_patterns(SIDECAR_DIR))
    spec = mix_corpus.spec(corpora=[str(copy)], budget=10**9, tokenizer={"path": str(mix_corpus.tokenizer)})
    message = refused(spec, tmp_path / "mix")
    assert "at most (UTF-8 bytes + 1 per document)" in message and not (copy / SIDECAR_DIR).exists()


def test_predicate_on_a_missing_column_lists_the_columns(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    spec = mix_corpus.spec(domains={"wiki": {"weight": 1.0, "where": "toxicity < 0.1"}})
    message = refused(spec, tmp_path / "mix")
    assert message.startswith(
        "domains.wiki.where: column 'toxicity' does not exist in the corpus; columns are: "
    )
    assert {"quality", "ppl_bucket", "n_words", "site"} <= set(message.split(": ")[-1].split(", "))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": {"wiki": 1}}, "spec: weights: unknown key; remove it or check its spelling"),
        ({"budget": None}, "spec: weights need `budget:` (tokens in the mixture)"),
        ({"tokenizer": {}}, "spec: tokenizer: give `path:` (a tokenizer.json) or `chars_per_token:`"),
        ({"domains": {"wiki": {"weight": 1, "tokens": 5}}}, "exactly one of `weight:` or `tokens:`"),
        ({"domains": {"wiki": {"tokens": 5}}}, "per-domain tokens sum to 5, not budget 200,000; drop one"),
        ({"domains": {"wiki": {"weight": 1, "max_epochs": 0.5}}}, "domains.wiki.max_epochs: Input should be"),
    ],
)
def test_spec_errors_name_the_key(mix_corpus: MixCorpus, change: dict, message: str) -> None:
    with pytest.raises(MixError) as error:
        parse_spec(mix_corpus.spec(**change))
    assert message in str(error.value)


def test_tokens_need_a_tokenizer_and_output_must_be_a_mixture(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    message = refused(mix_corpus.spec(), tmp_path / "mix", tokens=True)
    assert message.startswith("--tokens needs a tokenizer")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(MixError, match="exists and is not a mixture"):
        build_mixture(parse_spec(mix_corpus.spec()), busy)
    with pytest.raises(MixError, match="is inside corpus"):
        build_mixture(parse_spec(mix_corpus.spec()), mix_corpus.out / "mix")
    missing = mix_corpus.spec(tokenizer={"path": str(tmp_path / "nope.json")})
    assert refused(missing, tmp_path / "mix").startswith("tokenizer.path: tokenizer ")


def test_cli_prints_one_line_and_exits_2_then_builds(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    from api.main import app  # the CLI root: it turns a MixError into one line and exit code 2

    runner = CliRunner()
    bad = mix_corpus.write_spec("bad", mix_corpus.spec(domains={"wikii": 1.0}))
    result = runner.invoke(app, ["mix", str(bad), "--out", str(tmp_path / "mix")])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        "error: domains: unknown domain 'wikii'; the corpora hold: code, news, wiki"
    ]
    good = mix_corpus.write_spec("good", mix_corpus.spec(domains={"wiki": 0.9, "news": 0.3}, output="../mix"))
    result = runner.invoke(app, ["mix", str(good)])
    assert result.exit_code == 0, result.output
    assert "warning: weights sum to 1.2" in result.stderr
    mix = load_spec(good).output
    assert mix is not None and manifest_of(Path(mix))["totals"]["achieved_tokens"] >= 200_000
    result = runner.invoke(app, ["inspect", mix, "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0 and "requested" in result.stdout
    assert (tmp_path / "plots" / "shares.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_corpus_listed_twice_or_missing_is_refused(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    twice = mix_corpus.spec(corpora=[str(mix_corpus.out), str(mix_corpus.out)])
    assert (
        refused(twice, tmp_path / "mix")
        == f"corpora[1]: {mix_corpus.out} is listed twice; list each corpus once"
    )
    missing = refused(mix_corpus.spec(corpora=[str(tmp_path)]), tmp_path / "mix")
    assert (
        missing
        == f"corpora[0]: {tmp_path} has no manifest.json; pass the output folder of a finished `curate run`"
    )


def test_preflight_checks_the_budget_without_tokenizing(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    from mixers.sampler import preflight_mixture

    copy = tmp_path / "corpus"
    shutil.copytree(mix_corpus.out, copy, ignore=shutil.ignore_patterns(SIDECAR_DIR))
    exact = {"corpora": [str(copy)], "tokenizer": {"path": str(mix_corpus.tokenizer)}}
    preflight_mixture(parse_spec(mix_corpus.spec(**exact)), tmp_path / "mix")
    with pytest.raises(MixError, match="at most"):
        preflight_mixture(parse_spec(mix_corpus.spec(budget=10**9, **exact)), tmp_path / "mix")
    with pytest.raises(MixError, match="news needs 2,500,000 but has"):
        preflight_mixture(parse_spec(mix_corpus.spec(budget=10**7)), tmp_path / "mix")
    assert not (copy / SIDECAR_DIR).exists() and not (tmp_path / "mix").exists()
