"""Training KenLM n-gram models: the normalised corpus lmplz reads, lmplz + build_binary, held-out perplexity.

The recipes' side only (filters.perplexity_recipe trains with it): stages score with `filters.kenlm_lm`
and never import this module or the tool builder behind it (`filters.kenlm_build`). The corpus goes
through the same `normalize_for_lm` the scorer applies, so a model is queried with text normalised as
its training text was.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from filters.kenlm_build import KenLMBuildError, ensure_tools
from filters.kenlm_lm import normalize_for_lm, scoring_lines
from filters.kenlm_query import ProbingLm


def corpus_perplexity(model: ProbingLm, texts: list[str]) -> float:
    """Token-weighted perplexity of a whole held-out corpus (the usual LM metric)."""
    lines = scoring_lines(normalize_for_lm(pa.array(texts, pa.large_string())))
    log10 = sum(model.line_scores(lines.data, lines.offsets).tolist())  # in line order, as a loop adds
    return float(10.0 ** (-log10 / max(int(lines.tokens.sum()), 1)))


# ------------------------------------------------------------------------------------------ training


def write_corpus(texts: Iterable[str], path: Path, chunk: int = 512) -> dict[str, int]:
    """Normalised text, one paragraph per line, as lmplz reads it; returns line and token counts."""
    lines = tokens = 0
    buffer: list[str] = []
    with open(path, "w", encoding="utf-8") as handle:
        for text in texts:
            buffer.append(text)
            if len(buffer) >= chunk:
                lines, tokens = _flush(buffer, handle, lines, tokens)
        lines, tokens = _flush(buffer, handle, lines, tokens)
    return {"lines": lines, "tokens": tokens}


def _flush(buffer: list[str], handle, lines: int, tokens: int) -> tuple[int, int]:
    if buffer:
        for text in normalize_for_lm(pa.array(buffer, pa.large_string())).to_pylist():
            if text:
                handle.write(text + "\n")
                lines += text.count("\n") + 1
                tokens += text.count(" ") + text.count("\n") + 1
        buffer.clear()
    return lines, tokens


def train_kenlm(
    corpus: Path, out_dir: Path, order: int = 5, prune: list[int] | None = None, memory: str = "1G", log=print
) -> dict[str, Any]:
    """lmplz on a normalised corpus, then build_binary; returns the files and the training facts.

    `--discount_fallback` lets small corpora (tests, toxic text) train where Kneser-Ney's discount
    estimates would otherwise fail; `prune` (e.g. [0, 0, 1]) drops singleton higher-order n-grams to keep
    the binary small, as CCNet's released models do.
    """
    tools = ensure_tools(log=log)
    arpa = out_dir / "model.arpa"
    binary = out_dir / "model.bin"
    scratch = out_dir / "lmplz-tmp"
    scratch.mkdir(exist_ok=True)
    args = [
        str(tools["lmplz"]),
        "-o",
        str(order),
        "-S",
        memory,
        "-T",
        str(scratch),
        "--discount_fallback",
        "--text",
        str(corpus),
        "--arpa",
        str(arpa),
    ]
    if prune:
        args += ["--prune", *map(str, prune)]
    started = time.perf_counter()
    _run(args, "lmplz")
    _run([str(tools["build_binary"]), "-s", str(arpa), str(binary)], "build_binary")
    seconds = time.perf_counter() - started
    arpa.unlink()
    shutil.rmtree(scratch, ignore_errors=True)
    return {"binary": binary.name, "bytes": binary.stat().st_size, "train_seconds": round(seconds, 2)}


def _run(args: list[str], what: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        raise KenLMBuildError(f"{what} failed (exit {result.returncode}): {last}")
