"""C4's bad-words check: single words by hash, phrases by a search of lower-cased windows; for the
languages C4 matched without word boundaries (ja, th, zh), every substring of an entry's length by hash."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from curate.textwindows import whitespace_windows
from filters.rules.charclasses import _lowercase
from filters.rules.settings import _WORD_RUN_RE
from filters.rules.tokenizer import substring_hashes
from filters.rules.words import HashSet, TokenTable, hash_strings

_BLOCK = 1 << 16  # characters per step of the substring search (bounds its temporaries)


def default_bad_words() -> list[str]:
    """The English list shipped inside better-profanity (MIT): read as data, the library is not used."""
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


class BadWordMatcher:
    """C4's bad-words rule: a word or phrase of the list flanked by non-word chars in the lowercased text.

    Single words are looked up as hashes of the text's lowercased word runs. Phrases (`2 girls 1 cup`,
    `s.h.i.t.`) are confirmed with C4's regex only in documents that hold every word run of the phrase.
    """

    def __init__(self, words: Sequence[str]) -> None:
        words = sorted({w.strip().lower() for w in words if w.strip()})
        self.single_words = HashSet(hash_strings([w for w in words if _WORD_RUN_RE.fullmatch(w)]))
        self.phrases = [w for w in words if not _WORD_RUN_RE.fullmatch(w)]
        runs = sorted({run for p in self.phrases for run in _WORD_RUN_RE.findall(p)})
        self.gate_runs = HashSet(hash_strings(runs))
        self.column_of_gate = np.argsort(np.searchsorted(self.gate_runs.sorted, hash_strings(runs)))
        self.phrase_runs = np.zeros((len(self.phrases), len(runs)), dtype=np.int64)
        for i, phrase in enumerate(self.phrases):
            for run in set(_WORD_RUN_RE.findall(phrase)):
                self.phrase_runs[i, runs.index(run)] = 1
        self.runs_needed = self.phrase_runs.sum(axis=1)

    @classmethod
    def from_file(cls, path: str | None) -> BadWordMatcher:
        if path is None:
            return cls(default_bad_words())
        return cls(Path(path).read_text("utf-8").splitlines())

    def count(
        self, texts: Sequence[str], tokens: TokenTable, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Bad words and phrases found per document of start:stop (0 keeps the document); `texts` are
        the chunk's texts, `tokens` its TokenTable."""
        stop = tokens.n_docs if stop is None else stop
        all_hashes, all_offsets = tokens.word_runs()
        run_offsets = all_offsets[start : stop + 1]
        run_hashes = all_hashes[run_offsets[0] : run_offsets[-1]]
        run_offsets = run_offsets - run_offsets[0]
        texts = texts[start:stop]
        hits, _ = self.single_words.hits(run_hashes)
        counts = np.diff(np.searchsorted(hits, run_offsets)).astype(np.int64)
        if self.phrases:
            counts += self._count_phrases(texts, run_hashes, run_offsets)
        return counts

    def _count_phrases(
        self, texts: Sequence[str], run_hashes: np.ndarray, run_offsets: np.ndarray
    ) -> np.ndarray:
        """Documents holding every run of a phrase are checked for the phrase as C4's regex would."""
        n_docs = len(run_offsets) - 1
        counts = np.zeros(n_docs, dtype=np.int64)
        hits, which = self.gate_runs.hits(run_hashes)
        present = np.zeros((n_docs, self.phrase_runs.shape[1]), dtype=np.int64)
        present[np.searchsorted(run_offsets, hits, side="right") - 1, self.column_of_gate[which]] = 1
        candidates = np.argwhere(present @ self.phrase_runs.T >= self.runs_needed)
        for doc in np.unique(candidates[:, 0]).tolist():
            phrases = [self.phrases[p] for p in candidates[candidates[:, 0] == doc, 1].tolist()]
            counts[doc] += len(phrases_in(texts[doc], phrases))
        return counts


def lowered_windows(text: str, tail: int) -> Iterator[tuple[str, int]]:
    """text.lower() in pieces: (segment, own) per window of text cut at whitespace, where the segment is
    the window lower-cased (`own` characters) followed by the next `tail` characters lower-cased.

    Lower-casing never looks across whitespace, so the windows' own parts join into text.lower(); the
    tail lets a string of up to `tail` characters that starts in a window be found there. Only a final
    sigma at a tail's end can differ from the whole text's, which no ASCII needle can notice.
    """
    for start, stop in whitespace_windows(text):
        own = text[start:stop].lower()
        yield own + text[stop : stop + tail].lower(), len(own)


def _is_word_char(char: str) -> bool:
    """Python's \\w on a str: alphanumeric or underscore."""
    return char.isalnum() or char == "_"


def phrases_in(text: str, phrases: Sequence[str]) -> set[str]:
    """The phrases for which C4's `(?:\\W|^)phrase(?:\\W|$)` matches text.lower(), lower-casing a long
    text one window at a time. A window after the first starts at whitespace, which no phrase starts
    with, so a phrase found at a segment's start is at the start of the text."""
    found: set[str] = set()
    for segment, own in lowered_windows(text, max(map(len, phrases), default=0) + 1):
        found.update(
            phrase for phrase in phrases if phrase not in found and _has_phrase(segment, own, phrase)
        )
    return found


def _has_phrase(segment: str, own: int, phrase: str) -> bool:
    """The phrase, flanked by non-word characters or the text's ends, starts in the segment's own part."""
    at = segment.find(phrase)
    while 0 <= at < own:
        end = at + len(phrase)
        before_ok = at == 0 or not _is_word_char(segment[at - 1])
        if before_ok and (end == len(segment) or not _is_word_char(segment[end])):
            return True
        at = segment.find(phrase, at + 1)
    return False


class SubstringBadWords:
    """C4's bad-words rule for languages written without spaces (C4 did this for ja, th and zh): a list
    entry anywhere in the lowercased text, no word boundaries needed.

    For each entry length L, the hash of every L-character substring (the token hash of `hash_strings`)
    is looked up in a HashSet; the text is walked in blocks that overlap by the longest entry, so memory
    stays bounded.
    """

    def __init__(self, words: Sequence[str]) -> None:
        words = sorted({w.strip().lower() for w in words if w.strip()})
        self.by_length = {
            length: HashSet(hash_strings([w for w in words if len(w) == length]))
            for length in sorted({len(w) for w in words})
        }
        self.longest = max(self.by_length, default=0)

    def count(
        self, texts: Sequence[str], tokens: TokenTable, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Occurrences of list entries per document of start:stop of the chunk `tokens` was built on."""
        stop = tokens.n_docs if stop is None else stop
        doc_starts = tokens.doc_char_starts[start : stop + 1]
        text = tokens.text[doc_starts[0] : doc_starts[-1]]
        doc_starts = doc_starts - doc_starts[0]
        code_points = _lowercase(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32))
        positions = [
            self._hits(code_points[a : a + _BLOCK + self.longest], a) for a in range(0, len(text), _BLOCK)
        ]
        found = np.concatenate([np.zeros(0, dtype=np.int64), *positions])
        docs = np.searchsorted(doc_starts, found, side="right") - 1
        return np.bincount(docs, minlength=stop - start).astype(np.int64)

    def _hits(self, code_points: np.ndarray, base: int) -> np.ndarray:
        """Positions (offset by base) within the block's first _BLOCK characters where an entry starts."""
        found = []
        for length, entries in self.by_length.items():
            count = min(_BLOCK, len(code_points) - length + 1)
            if count > 0:
                found.append(entries.hits(substring_hashes(code_points, length, count))[0] + base)
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
