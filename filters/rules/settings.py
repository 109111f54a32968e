"""The rule families' settings (pydantic models, each threshold settable or nullable) and the constants
the published recipes define: stop words, terminal punctuation, bullets, ellipses, reason codes."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from curate.paths import PathParam, PathValue
from curate.stages.base import StageParams

# ----------------------------------------------------------------------------------------------- constants

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
"""Gopher's stop words; a document needs at least two *distinct* ones (case-sensitive, as DataTrove)."""

TERMINAL_PUNCTUATION = frozenset(".!?‼‽⁇⁈⁉。｡．！？﹒﹖﹗։؟۔܀܁܂।॥။၊።፧፨᙮᠃᠉។៕߹꓿꘎꘏꛳꛷⸮⸼᥄᥅")
"""Sentence terminals of the major scripts (Unicode's Sentence_Terminal property, common part): a line
ending in one counts as punctuated for FineWeb's line_punct_ratio. The ellipsis is deliberately absent."""

C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
MULTILINGUAL_END_PUNCTUATION = (*sorted(TERMINAL_PUNCTUATION), '"', "'", "»", "”", "’", "」", "』")
"""C4's "line ends in terminal punctuation" outside English: any script's sentence terminal (。！？। ...)
or a closing quote; C4's own tuple stays for English."""
C4_POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
BULLETS = ("•", "-")
WHITESPACE = "".join(char for char in map(chr, range(0x10000)) if char.isspace())
"""What `str.strip()`, `str.split()` and `str.isspace()` treat as whitespace (all in the BMP)."""
WHITESPACE_CLASS = "".join(f"\\x{{{ord(char):x}}}" for char in WHITESPACE)
"""WHITESPACE inside an RE2 character class (Arrow's regex kernels), where `\\s` is ASCII only."""
OTHER_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Where `str.splitlines()` breaks a line besides '\\n' ('\\r\\n' is one break)."""
LINE_BREAKS_RE = "\\r\\n|[\\n" + "".join(f"\\x{{{ord(char):x}}}" for char in OTHER_LINE_BREAKS) + "]"
"""Where `str.splitlines()` breaks a line, as an RE2 pattern for Arrow's split_pattern_regex."""
ELLIPSES = ("...", "…")

_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_TERMINATOR_RUN_RE = re.compile("[" + re.escape("".join(sorted(TERMINAL_PUNCTUATION))) + "]+")
_WORD_FOLLOWS_RE = re.compile(r"[\s\"'”’)\]]*[^\s\"'”’)\].!?…]")
_ABBREVIATION_LIST = """
    Adm Ak Ala Apr Ariz Ark Aug Bros Calif Co Colo Conn Corp Dec Del Dr Feb Fla Ga Gen Gov Ia Id Ill Inc Ind
    Jan Jr Jul Jun Kan Kans Ky La Ltd Mar Mass Md Messrs Mich Minn Miss Mo Mont Mr Mrs Ms Mt Neb Nebr Nev Nov
    Oct Okla Ore Pa Prof Rep Rev Sen Sep Sept St Tenn Va Wash Wis co vs a b c d e f g h i j k l m n o p q r s
    t u v w x y z a.m p.m e.g i.e E.g I.e E.G I.E v.s Ph.D
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_LIST.split())
"""Words keeping their period in spaCy's English tokenizer ('Mr.' is one token, 'Mr. Smith' one sentence)."""
_UNIT_LIST = (
    "km m dm cm mm ha nm yd in ft kg g mg t lb oz kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K am pm"
)
_UNITS = frozenset(_UNIT_LIST.split())
"""Units that spaCy splits off a number written against them (20cm -> 20 cm)."""
_OPENERS = "\"'([{“‘«"
_PARAGRAPH_SPLIT_RE = re.compile(r"\n{2,}")
_WORD_RUN_RE = re.compile(r"\w+")

CHUNK_CHARS = 1_000_000
"""Documents are evaluated in chunks of about this many characters: hash tables stay in cache."""

# Reason codes are `family:rule`. Families run in the order of DataTrove's FineWeb chain (repetition,
# quality, C4, FineWeb), so a document's first failed code (its drop reason) is the one DataTrove's chain
# would report first. An empty or whitespace-only document gets EMPTY and nothing else.
EMPTY = "heuristics:empty"


def _code(family: str, rule: str) -> str:
    return f"{family}:{rule}"


# ---------------------------------------------------------------------------------------------- parameters


class RuleFamily(BaseModel):
    """A family of rules that can be switched off as a whole; `None` on a threshold disables that rule."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class GopherRepetitionRules(RuleFamily):
    """Gopher (Rae et al. 2021, table A1): repeated lines, paragraphs and n-grams mark boilerplate/spam."""

    max_dup_para_frac: float | None = 0.3
    max_dup_para_char_frac: float | None = 0.2
    max_dup_line_frac: float | None = 0.3
    max_dup_line_char_frac: float | None = 0.2
    max_top_ngram_char_frac: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    max_dup_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )

    @field_validator("max_top_ngram_char_frac", "max_dup_ngram_char_frac")
    @classmethod
    def _ngram_sizes_are_sane(cls, value: dict[int, float]) -> dict[int, float]:
        bad = [n for n in value if not 2 <= n <= 32]
        if bad:
            raise ValueError(f"n-gram sizes must be between 2 and 32, got {bad}")
        return dict(sorted(value.items()))


class GopherQualityRules(RuleFamily):
    """Gopher's quality filter: document length, word shape, symbols, bullets and stop words."""

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3
    max_mean_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: tuple[str, ...] = STOP_WORDS


class C4Rules(RuleFamily):
    """C4 (Raffel et al. 2020) as in DataTrove's C4QualityFilter, plus C4's bad-words rule.

    C4 removes lines that do not end in terminal punctuation, have fewer than 3 words, contain a word
    over 1000 chars, mention javascript or a cookie/terms policy. Here no text is removed: those lines just
    do not count towards `min_sentences`. Set `require_terminal_punct: false` for FineWeb's variant.
    """

    require_terminal_punct: bool = True
    min_words_per_line: int | None = 3
    max_word_length: int | None = 1000
    min_sentences: int | None = 5
    remove_citations: bool = True
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    reject_lorem_ipsum: bool = True
    reject_curly_bracket: bool = True
    reject_bad_words: bool = False
    """Off by default: better-profanity's list is made for chat and holds ordinary words ("god", "kill",
    "hell"), so rejecting on it would drop two thirds of Gutenberg passages. `rule_bad_word_count` is
    always written, for mixing predicates; set true for C4's strict behaviour."""
    bad_words_file: PathParam | None = None
    """English: one word or phrase per line; default: the list shipped in the better-profanity package."""
    bad_words_dir: PathValue | None = None
    """Other languages: a folder of per-language lists named by language code (`de`, `fr`, `ja`...), as
    LDNOOBW's repository lays them out (the lists C4 used). A language without a file there, or every
    non-English language when unset, skips the rule (counted in the stage's stats)."""

    @field_validator("bad_words_dir")
    @classmethod
    def _bad_words_dir_is_a_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(
                f"{value} is not a folder: give a folder of word lists named by language code (de, fr...),"
                " such as LDNOOBW's, or leave bad_words_dir unset"
            )
        return value


class FineWebRules(RuleFamily):
    """FineWeb's own quality filter (Penedo et al. 2024), on non-blank lines split at '\\n'."""

    min_line_punct_ratio: float | None = 0.12
    line_punct_exclude_zero: bool = False
    max_short_line_ratio: float | None = 0.67
    short_line_length: int = 30
    max_char_dup_ratio: float | None = 0.01
    max_newline_ratio: float | None = 0.3


class RuleSet(StageParams):
    """All rule families, in evaluation order (the order of DataTrove's FineWeb pipeline)."""

    gopher_repetition: GopherRepetitionRules = Field(default_factory=GopherRepetitionRules)
    gopher_quality: GopherQualityRules = Field(default_factory=GopherQualityRules)
    c4: C4Rules = Field(default_factory=C4Rules)
    fineweb: FineWebRules = Field(default_factory=FineWebRules)
