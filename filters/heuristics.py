"""The `heuristics` stage: Gopher, C4 and FineWeb quality rules as columns, and optionally as drops.

Tag first, decide later: every document gets `rule_flags` (the comma-separated codes of every rule it
fails, '' if none) and a few numeric signals, so a later mixture can re-threshold without re-running.
In `mode: drop` the first failed code (in the order of DataTrove's FineWeb chain) is the drop reason;
in `mode: annotate` nothing is dropped. The rules themselves live in `filters.rules`.

Languages: when the batch has the `lang` column of the `langid` stage, each document gets its language's
words, stop words, bad words and line punctuation (`filters.rules.languages`); without it, or where a
row's language is null, the rules are the English ones. Rules a language has no list for are skipped and
counted as `skipped:<code>:<lang>` in the stats.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.stages.base import Resources, Stage, StageResult, set_columns
from curate.stages.registry import register
from filters.rules import SIGNAL_FIELDS, RuleEngine, RuleReport, RuleSet
from filters.rules.languages import ENGLISH
from filters.rules.words import compile_kernels

RULE_FLAGS_FIELD = pa.field("rule_flags", pa.string(), nullable=False)
LANG_COLUMN = "lang"
"""Written by the `langid` stage (lid.176 codes)."""


class HeuristicsParams(RuleSet):
    """The rule families (see filters.rules) plus what to do with a document that fails one."""

    mode: Literal["drop", "annotate"] = "drop"


@register
class HeuristicRules(Stage):
    """Gopher quality + repetition, C4 and FineWeb rules on a pyarrow batch, one core, no models."""

    name = "heuristics"
    Params = HeuristicsParams
    resources = Resources(cpus=1.0, gpus=0.0, memory_mb=1024)

    def __init__(self, params: HeuristicsParams) -> None:
        super().__init__(params)
        self._engine: RuleEngine | None = None

    @classmethod
    def drop_reasons(cls) -> dict[str, str]:
        """The codes the default rule families emit, in evaluation order (the README's table says when)."""
        when = "`mode: drop` and this is the first rule the document fails"
        return {code: when for code in RuleEngine(HeuristicsParams()).codes}

    def output_fields(self) -> list[pa.Field]:
        return [RULE_FLAGS_FIELD, *SIGNAL_FIELDS]

    def setup(self) -> None:
        """Load the bad-word list, build the Unicode tables and compile the rules' loops once per worker
        (the text repeats, so the n-gram walk reaches every loop)."""
        self._engine = RuleEngine(self.params)
        self._engine.evaluate(["warm up the character tables, " * 4])
        compile_kernels()

    def process(self, batch: pa.Table) -> StageResult:
        if self._engine is None:
            self.setup()
        langs = batch.column(LANG_COLUMN) if LANG_COLUMN in batch.column_names else None
        report = self._engine.evaluate(batch.column("text").to_pylist(), langs)
        table = set_columns(batch, _output_columns(report))
        drop_reason = pa.array(report.first_failed(), pa.string()) if self.params.mode == "drop" else None
        stats = _stats(report, self.params.mode) + _skipped_stats(report, langs)
        return StageResult(table=table, drop_reason=drop_reason, stats=stats)


def _output_columns(report: RuleReport) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {RULE_FLAGS_FIELD.name: pa.array(report.flags(), pa.string())}
    for field in SIGNAL_FIELDS:
        values = report.signals[field.name]
        missing = np.isnan(values)
        filled = np.where(missing, 0, values)
        columns[field.name] = pa.array(filled, mask=missing).cast(field.type)
    return columns


def _stats(report: RuleReport, mode: str) -> Counter:
    """Per-code failure counts, like DataTrove's stat_update, plus how many documents were dropped."""
    stats: Counter = Counter(docs=len(report.failed))
    failed_any = report.failed.any(axis=1)
    stats["flagged"] = int(failed_any.sum())
    stats["dropped"] = int(failed_any.sum()) if mode == "drop" else 0
    for code, count in zip(report.codes, report.failed.sum(axis=0).tolist(), strict=True):
        if count:
            stats[f"failed:{code}"] = int(count)
    return stats


def _skipped_stats(report: RuleReport, langs: pa.Array | pa.ChunkedArray | None) -> Counter:
    """Documents each rule was not applied to, per language: `skipped:gopher_quality:stop_words:th`."""
    stats: Counter = Counter()
    for code, skipped in report.skipped.items():
        if not skipped.any() or langs is None:
            continue
        languages = pc.fill_null(langs, ENGLISH).filter(pa.array(skipped))
        for row in pc.value_counts(languages).to_pylist():
            stats[f"skipped:{code}:{row['values']}"] = row["counts"]
    return stats
