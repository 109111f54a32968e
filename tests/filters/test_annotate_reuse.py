"""The faster annotate chain gives today's answers, on real documents from ../shared/data.

What changed for speed, and the tolerance each change is held to here (BENCHMARKS.md, "Filters", says
the same):

- stages reuse what an earlier stage derived from the same text column (`filters.batch_memo`): the CCNet
  normalisation, the classifier lines, quality's KenLM perplexities. Tolerance: none. The chain with
  reuse and the chain with the memo emptied before every stage give identical columns and drop reasons.
- KenLM document perplexity is summed by Arrow + numpy instead of a per-document loop, over line scores
  from compiled code that reads the model itself (filters.kenlm_query). Tolerance: none (bit-identical
  float64 to the loop of kenlm module calls it replaced, which this file keeps as the reference;
  tests/filters/test_kenlm_query.py holds the line scores to kenlm's on models of order 2, 3 and 5).
- the CCNet normalisation after lowercasing is one compiled pass over the UTF-8 bytes
  (filters.lm_normalize_kernel).
  Tolerance: none (the same text as every pass on every row, which this file keeps as the reference;
  tests/filters/test_lm_kernels.py holds it to that on every code point, web, UDHR and edge-case text).
- classifier texts come from the shared normalisation for documents within the cap. Tolerance: none.
- toxicity and quality score with a compiled copy of fastText's prediction (filters.fasttext_kernel).
  Tolerance: 1e-7 on the probability (the last bit of a float32 exp; nearly all scores are bit-identical),
  held in tests/filters/test_fasttext_kernel.py against fastText's predict on real documents.
- langid reads a long document on its first 500 characters, whole when that sample scores below 0.9.
  Tolerance: the same `lang` as the whole text on >= 99.5% of documents, English web and multilingual
  alike; a text within the sample is classified exactly as before. Samples are cut from a prefix of each
  text: tolerance none (the same samples as cutting each whole one-line text).
"""

from __future__ import annotations

import subprocess
import zipfile
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate.schema import BASE_SCHEMA, conform
from curate.stages.registry import get_stage
from curate.textsources import book_passages, wikipedia_pages
from filters import batch_memo
from filters.fasttext_scoring import classifier_lines, classifier_texts
from filters.kenlm_lm import document_perplexities, load_kenlm, normalize_for_lm, perplexities
from filters.langid import SAMPLE_CHARS, one_line, predict_languages, predict_sampled, sample_lines
from filters.lm_unicode import NON_PRINTING, PUNCTUATION_MULTI, PUNCTUATION_TO, SPACES
from filters.model_registry import find_model, models_home
from tests.filters.web_docs import web_docs

CHAIN = ("langid", "heuristics", "perplexity", "harmful_ppl", "toxicity", "quality")
MODELS = {
    "perplexity": "wiki-5gram",
    "harmful_ppl": "harmful-5gram",
    "toxicity": "toxicity",
    "quality": "quality",
}
MIN_LANG_AGREEMENT = 0.995


@pytest.fixture(scope="module")
def real_texts(shared: Path) -> list[str]:
    """Web pages, Wikipedia pages and book passages (a few longer than the classifiers' 20,000-char cap)."""
    texts = [doc.text for doc in web_docs(shared / "web")]
    texts += [text for _, text in islice(wikipedia_pages(), 120)]
    texts += [text for _, text in islice(book_passages(shared / "domains" / "books"), 120)]
    texts += [text for _, text in islice(book_passages(shared / "domains" / "books", 60_000), 4)]
    return texts


def batch_of(texts: list[str | None]) -> pa.Table:
    ids = [f"doc{i}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": pa.array(texts, pa.large_string()), "source": ["test"] * len(texts)})
    return conform(table, BASE_SCHEMA)


def loop_perplexities(model, normalized: list[str | None]) -> np.ndarray:
    """The per-document loop of the kenlm module's per-line scores `document_perplexities` replaced, kept
    as the reference."""
    out = []
    for text in normalized:
        log10, length = 0.0, 0
        for line in (text or "").split("\n"):
            if line:
                log10 += model.score(line, bos=True, eos=True)
                length += line.count(" ") + 2
        out.append(10.0 ** (-log10 / length) if length else np.nan)
    return np.asarray(out, dtype=np.float64)


def bigram_arpa(texts: list[str], path: Path) -> Path:
    """A real KenLM model (ARPA bigrams from these texts' counts, no smoothing worth the name), so no
    lmplz build is needed: what is under test is the summing, not the model."""
    words: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for text in normalize_for_lm(pa.array(texts, pa.large_string())).to_pylist():
        for line in text.split("\n"):
            tokens = ["<s>", *line.split(), "</s>"]
            words.update(tokens)
            pairs.update(zip(tokens, tokens[1:], strict=False))
    vocab = {w for w, n in words.items() if n > 1} | {"<s>", "</s>"}
    total = sum(words.values())
    unigrams = [f"{np.log10(n / total):.6f}\t{w}\t-0.3" for w, n in words.items() if w in vocab - {"<s>"}]
    unigrams += ["-99\t<s>\t-0.3", f"{np.log10(1 / total):.6f}\t<unk>\t0"]
    bigrams = [
        f"{np.log10(n / words[a]):.6f}\t{a} {b}"
        for (a, b), n in pairs.items()
        if n > 1 and a in vocab and b in vocab
    ]
    header = f"\\data\\\nngram 1={len(unigrams)}\nngram 2={len(bigrams)}\n\n"
    body = "\\1-grams:\n" + "\n".join(unigrams) + "\n\n\\2-grams:\n" + "\n".join(bigrams)
    path.write_text(header + body + "\n\n\\end\\\n")
    return path


def test_document_perplexities_are_bit_identical_to_the_loop(
    real_texts: list[str], tmp_path: Path, kenlm_tools: dict[str, Path]
) -> None:
    import kenlm

    build_binary = str(kenlm_tools["build_binary"])
    arpa = bigram_arpa(real_texts[::10], tmp_path / "bigram.arpa")
    subprocess.run(
        [build_binary, "-s", str(arpa), str(tmp_path / "bigram.bin")], check=True, capture_output=True
    )
    model = load_kenlm(str(tmp_path / "bigram.bin"))
    texts = [*real_texts, "", None, "  \n\n ", "!"]
    normalized = normalize_for_lm(pa.array(texts, pa.large_string()))
    got = document_perplexities(model, normalized)
    assert np.array_equal(
        got, loop_perplexities(kenlm.Model(str(arpa)), normalized.to_pylist()), equal_nan=True
    )
    assert np.isnan(got[-3:-1]).all() and np.isfinite(got[: len(real_texts)]).all()
    batch_memo.clear()
    column = pa.chunked_array(
        [pa.array(texts[:50], pa.large_string()), pa.array(texts[50:], pa.large_string())]
    )
    assert perplexities(model, column) is perplexities(model, column)  # the second call is the memo's
    assert np.array_equal(perplexities(model, column), got, equal_nan=True)


def every_pass(texts: pa.Array) -> pa.Array:
    """CCNet's normalisation as plain passes over every row (the reference `normalize_for_lm` keeps to)."""
    texts = pc.utf8_normalize(pc.utf8_lower(pc.fill_null(texts, "")), form="NFD")
    texts = pc.replace_substring_regex(texts, r"\p{Mn}+", "")
    texts = pc.replace_substring_regex(texts, r"\p{Nd}", "0")
    for target, sources in PUNCTUATION_TO.items():
        for source in sources:
            texts = pc.replace_substring(texts, source, target)
    for source, target in PUNCTUATION_MULTI.items():
        texts = pc.replace_substring(texts, source, target)
    texts = pc.replace_substring_regex(texts, f"[{NON_PRINTING}]", "")
    texts = pc.replace_substring_regex(texts, r"([\p{P}\p{S}])", r" \1 ")
    texts = pc.replace_substring_regex(texts, f"[{SPACES}]+", " ")
    texts = pc.replace_substring_regex(texts, r" ?\n[ \n]*", "\n")
    return pc.utf8_trim(texts, " \n")


def test_normalisation_equals_every_pass_on_every_row(real_texts: list[str]) -> None:
    unicode = [
        "Caf\u00e9 na\u0131ve \u00c5ngstr\u00f6m",  # precomposed letters decompose
        "a\u0301\u0316b q\u0307\u0323",  # marks out of canonical order
        "\u1e9b\u0323 \ufb01 \u2329x\u232a \ud55c\uad6d\uc5b4",  # NFD yields a punctuation source
        "\u201cquoted\u201d \u2014 \u2026 \u200b\x07ok\u00a0end",  # nothing to decompose
        "\uff21\uff22\uff11\uff12\u3002 \u0968\u0966",  # full-width and Devanagari digits
        None,
        "",
    ]
    every_source = "".join(PUNCTUATION_TO.values()) + "".join(PUNCTUATION_MULTI)
    unicode += [every_source, f"a{every_source}b{every_source[::-1]}", "\u2026", "\u3002\u2014x\u00bb"]
    for texts in (real_texts[:80] + unicode, unicode[3:4], ["plain ascii, only."]):
        column = pa.array(texts, pa.large_string())
        assert normalize_for_lm(column).to_pylist() == every_pass(column).to_pylist()
        parts = (column.slice(3, 40), pa.chunked_array([column, column.slice(1)]), column.cast(pa.string()))
        for part in parts:
            assert normalize_for_lm(part).to_pylist() == every_pass(part).to_pylist()


def test_classifier_texts_of_a_column_equal_normalising_each_cut_text(real_texts: list[str]) -> None:
    texts = [*real_texts, None, ""]
    assert max(map(len, real_texts)) > 20_000  # the cut path is exercised
    cut = pc.utf8_slice_codeunits(pc.fill_null(pa.array(texts, pa.large_string()), ""), 0, 20_000)
    expected = normalize_for_lm(cut)
    batch_memo.clear()
    assert classifier_texts(pa.array(texts, pa.large_string()), 20_000).to_pylist() == expected.to_pylist()
    one_line_each = pc.replace_substring(expected, "\n", " ").to_pylist()
    assert classifier_lines(texts, 20_000) == one_line_each  # training data: one line per example


def test_langid_sample_agrees_with_the_whole_text(shared: Path, real_texts: list[str]) -> None:
    udhr = []
    with zipfile.ZipFile(shared / "langid" / "udhr2.zip") as archive:
        for info in archive.infolist():
            if not info.is_dir():
                udhr.append(archive.read(info).decode("utf-8", errors="replace"))
    for name, texts in {"web, wiki, books": real_texts, "UDHR in 388 languages": udhr}.items():
        column = pa.array(texts, pa.large_string())
        lines = one_line(column)
        whole, whole_scores = predict_languages(lines)
        sampled, sampled_scores = predict_sampled(column, SAMPLE_CHARS)
        agreement = np.mean(np.array(whole) == np.array(sampled))
        assert agreement >= MIN_LANG_AGREEMENT, (name, agreement)
        short = np.array([len(line) <= SAMPLE_CHARS for line in lines])
        assert np.array_equal(sampled_scores[short], whole_scores[short]), name


def test_samples_from_a_prefix_equal_cutting_the_whole_line(real_texts: list[str]) -> None:
    breaks = "\r\n" * 900
    texts = [
        *real_texts[:40],
        None,
        "",
        "a" * 499 + "\r\n" + "b" * 10,  # a break run across the sample's end
        "a" * 1999 + "\r\n" + "b",  # ... across the prefix's end
        "a" * 10 + breaks + "b" * 600,  # runs collapse the prefix below the sample: made whole
        "é" * 300 + breaks + "日本" * 400,
        breaks,
    ]
    column = pa.array(texts, pa.large_string())
    for max_chars in (None, 300, 510, 5000):
        lines = one_line(column, max_chars)
        samples, longer = sample_lines(column, 500, max_chars)
        assert samples.to_pylist() == [line[:500] for line in lines], max_chars
        assert longer.tolist() == [len(line) > 500 for line in lines], max_chars


def tiny_models(shared: Path, home: Path) -> Path:
    """The chain's four models under their default names, small (a minute or two): quality is the
    ensemble with the same KenLM model, so its reuse of perplexity's scores is exercised."""
    from filters.kenlm_build import KenLMBuildError, ensure_tools
    from filters.perplexity_recipe import train_lm
    from filters.quality_recipe import train_quality
    from tests.core.tiny_models import train_tiny_toxicity

    try:
        ensure_tools(install_packages=False, log=lambda _: None)
    except KenLMBuildError as error:
        pytest.skip(f"KenLM's lmplz cannot be built on this machine: {error}")
    quiet = {"home": home, "log": lambda _: None}
    train_lm(MODELS["perplexity"], books_mb=0, **quiet)
    train_lm(MODELS["harmful_ppl"], corpus="harmful", order=3, **quiet)
    train_tiny_toxicity(shared, home, MODELS["toxicity"])
    small = {"epoch": 2, "dim": 16, "bucket": 50_000}
    train_quality(
        MODELS["quality"], MODELS["perplexity"], books_mb=0.5, hyperparams=small, skipgram=None, **quiet
    )
    return home


@pytest.fixture(scope="module")
def chain_stages(shared: Path, tmp_path_factory: pytest.TempPathFactory):
    """The chain's stages with their pipeline defaults, on the trained models of the models home, or on
    tiny ones trained here when that home lacks them (a fresh clone)."""
    home = models_home()
    if any(find_model(name, home) is None for name in MODELS.values()):
        home = tiny_models(shared, tmp_path_factory.mktemp("chain-models"))
    stages = []
    for name in CHAIN:
        cls = get_stage(name)
        params = {"models_dir": str(home)} if name in MODELS else {}
        stage = cls(cls.Params.model_validate(params))
        stage.setup()
        stages.append(stage)
    return stages


def run_chain(stages, batch: pa.Table, reuse: bool) -> tuple[pa.Table, dict[str, list]]:
    """Each stage on the previous one's table, nothing dropped; with `reuse` off the memo is emptied
    before every stage, so each computes everything itself."""
    batch_memo.clear()
    reasons = {}
    for stage in stages:
        if not reuse:
            batch_memo.clear()
        result = stage.process(batch)
        batch, reasons[stage.name] = result.table, result.drop_reason
    return batch, {name: (r.to_pylist() if r is not None else None) for name, r in reasons.items()}


def test_chain_with_reuse_gives_identical_columns_and_drops(chain_stages, real_texts: list[str]) -> None:
    batch = batch_of(real_texts)
    fast, fast_reasons = run_chain(chain_stages, batch, reuse=True)
    reference, reference_reasons = run_chain(chain_stages, batch, reuse=False)
    assert fast_reasons == reference_reasons
    assert fast.column_names == reference.column_names
    for name in fast.column_names:  # rule_flags, lang, ppl, harmful_ppl, toxicity, quality, ...: exact
        assert fast.column(name).equals(reference.column(name)), name
    assert pc.count(fast.column("quality")).as_py() == len(real_texts)  # every document scored
