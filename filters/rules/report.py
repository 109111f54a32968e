"""What the rule engine says of a batch: which documents fail which rule (`RuleReport`), the numeric
signals kept for mixing (`SIGNAL_FIELDS`), and `Checks`, which collects them while a chunk is evaluated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SIGNAL_FIELDS: list[pa.Field] = [
    pa.field("rule_word_count", pa.int32()),
    pa.field("rule_mean_word_length", pa.float32()),
    pa.field("rule_alpha_word_frac", pa.float32()),
    pa.field("rule_dup_line_char_frac", pa.float32()),
    pa.field("rule_dup_ngram_char_frac", pa.float32()),
    pa.field("rule_line_punct_frac", pa.float32()),
    pa.field("rule_bad_word_count", pa.int32()),
]
"""Numeric signals kept for mixing; null when their family (or rule) is disabled."""


@dataclass
class RuleReport:
    """Per-document outcome: `failed[i, j]` is True when document i fails rule `codes[j]`; `skipped[code]`
    marks the documents a rule was not applied to, for want of a list or a meaning in their language."""

    codes: list[str]
    failed: np.ndarray
    signals: dict[str, np.ndarray]
    skipped: dict[str, np.ndarray]

    @classmethod
    def concatenate(cls, reports: list[RuleReport]) -> RuleReport:
        return cls(
            codes=reports[0].codes,
            failed=np.concatenate([r.failed for r in reports]),
            signals={k: np.concatenate([r.signals[k] for r in reports]) for k in reports[0].signals},
            skipped={
                code: np.concatenate(
                    [r.skipped.get(code, np.zeros(len(r.failed), dtype=bool)) for r in reports]
                )
                for code in dict.fromkeys(code for r in reports for code in r.skipped)
            },
        )

    def in_original_order(self, order: np.ndarray | None) -> RuleReport:
        """The report of documents evaluated in `order` (order[k]: original index of the k-th one),
        with rows back in the original order."""
        if order is None:
            return self

        def restore(values: np.ndarray) -> np.ndarray:
            out = np.empty_like(values)
            out[order] = values
            return out

        return RuleReport(
            codes=self.codes,
            failed=restore(self.failed),
            signals={k: restore(v) for k, v in self.signals.items()},
            skipped={k: restore(v) for k, v in self.skipped.items()},
        )

    def flags(self) -> list[str]:
        """Comma-separated failed codes per document, '' when it passes every rule."""
        out = [""] * len(self.failed)
        for doc in np.flatnonzero(self.failed.any(axis=1)).tolist():
            out[doc] = ",".join(self.codes[j] for j in np.flatnonzero(self.failed[doc]).tolist())
        return out

    def first_failed(self) -> list[str | None]:
        """The drop reason of each document: its first failed code in evaluation order, else None."""
        out: list[str | None] = [None] * len(self.failed)
        for doc in np.flatnonzero(self.failed.any(axis=1)).tolist():
            out[doc] = self.codes[int(np.argmax(self.failed[doc]))]
        return out


class Checks:
    """Collects (code, failed-array) in evaluation order while a chunk is evaluated."""

    def __init__(self, n_docs: int) -> None:
        self.codes: list[str] = []
        self.failed: list[np.ndarray] = []
        self.skipped: dict[str, np.ndarray] = {}
        self.n_docs = n_docs

    def add(self, code: str, failed: np.ndarray) -> None:
        self.codes.append(code)
        self.failed.append(np.asarray(failed, dtype=bool))

    def outside(self, code: str, values: np.ndarray, low: float | None, high: float | None) -> None:
        """Rule `code` fails below `low` or above `high` (None: no bound); added even with neither, so
        that the configuration's codes do not depend on its bounds."""
        failed = np.zeros(len(values), dtype=bool)
        if low is not None:
            failed |= values < low
        if high is not None:
            failed |= values > high
        self.add(code, failed)

    def at_most(self, code: str, values: np.ndarray, limit: float | None) -> None:
        """Rule `code` fails above `limit`; no rule at all when `limit` is None."""
        if limit is not None:
            self.add(code, values > limit)

    def at_least(self, code: str, values: np.ndarray, limit: float | None) -> None:
        """Rule `code` fails below `limit`; no rule at all when `limit` is None."""
        if limit is not None:
            self.add(code, values < limit)

    def skip(self, code: str, docs: slice | None = None) -> None:
        """Mark documents (all by default) whose language leaves rule `code` out."""
        mask = self.skipped.setdefault(code, np.zeros(self.n_docs, dtype=bool))
        mask[docs if docs is not None else slice(None)] = True
