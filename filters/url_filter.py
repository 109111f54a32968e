"""url_filter: drop documents whose URL is on a blocklist the user names (domains, URLs, words in URLs).

Each named list has up to three files, one entry a line, blank lines and lines starting with `#` ignored
(UT1's blacklist folders fit as they are: `lists: {adult: {domains: ut1/adult/domains, urls:
ut1/adult/urls}}`). A document is dropped as `url_filter:<list name>` by the first list, in config order,
that matches its `url` column (where the readers put `url`, `metadata.url` or `meta.url`, and the WARC
target URI). How each file matches, on the lower-cased URL:

- `domains`: the URL's host or any parent of it, by walking host suffixes at dots (no public-suffix list
  is needed: the list says what it blocks). `example.com` blocks `a.b.example.com` and `example.com.`,
  not `notexample.com`. A leading `*.` or `.` on an entry is dropped.
- `urls`: host (a leading `www.` dropped on both sides) plus path, matched whole or as a prefix that ends
  at a `/`: `example.com/forum` blocks `https://www.example.com/forum/t/1?p=2`, not `example.com/forums`.
  Scheme, user, port and the URL's own trailing `/` do not matter.
- `words`: DataTrove's hard-blacklist rule: the URL is split into tokens at every character that is not a
  letter or digit, and a token equal to a listed word drops it. `porn` drops `example.com/porn-videos`,
  not `example.com/pornography` nor `sporn.de`. Each entry must be one such token.

A document with no URL (null, empty, or no host) is kept unless `no_url: drop` (`url_filter:no_url`);
either way `url_filter:no_url` counts them in the stats, and `url_filter:<list>:<file>` counts drops by
the file that matched. Files are checked when the config is validated (a missing one is a one-line
error naming it; a relative path is taken from the working directory and pinned absolute there) and
read once per worker in `setup()`: on a Ray cluster every node must see them at that path (they are not
shipped as model folders are). URL parsing and word matching are Arrow compute over the whole batch; the
domain and URL lookups run in Python sets once per distinct host / URL of the batch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, Field, model_validator

from curate.errors import ConfigError
from curate.paths import PathValue
from curate.stages.base import Resources, Stage, StageParams, StageResult

NO_URL = "url_filter:no_url"
URL_PARTS = r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^/?#@]*@)?(?P<host>[^/?#:@\s]+)(?::\d*)?(?P<rest>[/?#].*)?$"
NOT_A_WORD = r"[^\p{L}\p{N}]+"


def existing_file(path: Path) -> Path:
    """A list file that exists, as an absolute path (workers may run in another directory)."""
    full = path.resolve()
    if not full.is_file():
        shown = path if path.is_absolute() else f"{path} (from the working directory: {full})"
        raise ConfigError(
            f"file {shown} does not exist; give the path of a list file (one entry a line, `#` comments)"
        )
    return full


ListFile = Annotated[PathValue, AfterValidator(existing_file)]


def list_name(name: str) -> str:
    """A list's name becomes the reject reason `url_filter:<name>`: short and plain."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", name) or name == "no_url":
        raise ValueError(
            f"list name {name!r} must be lower-case letters, digits, '_', '-' or '.' (not no_url)"
        )
    return name


ListName = Annotated[str, AfterValidator(list_name)]


def read_entries(path: Path) -> list[str]:
    """Lower-cased entries of a list file: blank lines and `#` comments skipped."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        stripped = (line.strip().lower() for line in lines)
        return [line for line in stripped if line and not line.startswith("#")]


class UrlList(StageParams):
    domains: ListFile | None = None
    urls: ListFile | None = None
    words: ListFile | None = None

    @model_validator(mode="after")
    def _some_file_and_single_token_words(self) -> UrlList:
        if self.domains is None and self.urls is None and self.words is None:
            raise ValueError("a list needs at least one of `domains`, `urls`, `words` (a file path)")
        if self.words is not None:
            for number, word in enumerate(read_entries(self.words), start=1):
                if not re.fullmatch(r"[^\W_]+", word):
                    raise ValueError(
                        f"{self.words} entry {number} {word!r} is not one word of letters or digits; "
                        "split it into separate words (URLs are matched token by token)"
                    )
        return self


class UrlFilterParams(StageParams):
    lists: dict[ListName, UrlList] = Field(min_length=1, description="name -> files; the name is the reason")
    no_url: Literal["keep", "drop"] = "keep"


class UrlFilter(Stage):
    name = "url_filter"
    Params = UrlFilterParams
    params: UrlFilterParams
    drops = {
        "url_filter:<list>": "the URL's host, page or a URL word is on list <list> (the first that matches)",
        "url_filter:no_url": "`no_url: drop` and the document has no URL",
    }
    resources = Resources(cpus=1.0, memory_mb=2048)  # a full UT1 adult list is ~4.6 M domains

    def setup(self) -> None:
        self._lists = {name: Blocklist.read(spec) for name, spec in self.params.lists.items()}

    def process(self, batch: pa.Table) -> StageResult:
        hosts, rest = url_parts(batch.column("url").combine_chunks())
        no_url = pc.fill_null(pc.equal(hosts, ""), True).to_numpy(zero_copy_only=False)
        reasons = np.full(batch.num_rows, None, dtype=object)
        decided = no_url & (self.params.no_url == "drop")
        reasons[decided] = NO_URL
        stats: Counter = Counter({NO_URL: int(no_url.sum())})
        for name, blocklist in self._lists.items():
            for file, hit in blocklist.matches(hosts, rest):
                new = hit & ~decided
                reasons[new] = f"url_filter:{name}"
                decided |= new
                stats[f"url_filter:{name}:{file}"] += int(new.sum())
        return StageResult(batch, pa.array(reasons, pa.string()), +stats)


def url_parts(urls: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Lower-cased host (trailing dot dropped) and the rest (path, query, fragment) of every URL; the host
    is null where there is no URL or it has no host."""
    parts = pc.extract_regex(pc.utf8_lower(urls), URL_PARTS)
    hosts = pc.utf8_rtrim(pc.struct_field(parts, "host"), ".")
    return hosts, pc.struct_field(parts, "rest")


class Blocklist:
    """The entries of one named list, as sets, and how each kind of entry matches a batch of URLs."""

    def __init__(self, domains: frozenset[str], urls: frozenset[str], words: frozenset[str]) -> None:
        self.domains, self.urls, self.words = domains, urls, words

    @classmethod
    def read(cls, spec: UrlList) -> Blocklist:
        def entries(path: Path | None) -> list[str]:
            return [] if path is None else read_entries(path)

        domains = frozenset(d.removeprefix("*.").strip(".") for d in entries(spec.domains))
        urls = frozenset(url_key(u) for u in entries(spec.urls))
        return cls(domains, urls, frozenset(entries(spec.words)))

    def matches(self, hosts: pa.Array, rest: pa.Array) -> list[tuple[str, np.ndarray]]:
        """(file kind, mask of URLs it blocks) for each file of the list that has entries."""
        found = []
        if self.domains:
            found.append(("domains", per_distinct(hosts, self.blocks_host)))
        if self.urls:
            found.append(
                ("urls", per_distinct(pc.binary_join_element_wise(hosts, rest, ""), self.blocks_url))
            )
        if self.words:
            found.append(("words", has_word(pc.binary_join_element_wise(hosts, rest, "/"), self.words)))
        return found

    def blocks_host(self, host: str) -> bool:
        """The host or a parent domain of it is listed (suffixes at dots, the host itself first)."""
        labels = host.split(".")
        return any(".".join(labels[i:]) in self.domains for i in range(len(labels)))

    def blocks_url(self, key: str) -> bool:
        """The URL, or a prefix of it that ends at a `/`, is listed."""
        key = url_key(key)
        return key in self.urls or any(key[:cut] in self.urls for cut in slash_positions(key))


def url_key(url: str) -> str:
    """host/path?query of a URL or a list entry: no scheme, user, port, leading `www.` or trailing `/`."""
    match = re.match(URL_PARTS, url.strip().lower())
    if match is None:
        return url
    return (match["host"].rstrip(".").removeprefix("www.") + (match["rest"] or "")).rstrip("/")


def slash_positions(key: str) -> list[int]:
    """Indices of the `/` of a key's path, up to its query: each ends a prefix an entry may block."""
    path_end = min((i for i in (key.find("?"), key.find("#")) if i >= 0), default=len(key))
    return [i for i in range(path_end) if key[i] == "/"]


def per_distinct(values: pa.Array, blocked: Callable[[str], bool]) -> np.ndarray:
    """`blocked` once per distinct non-empty value of the batch, spread back to every row."""
    encoded = pc.dictionary_encode(values)
    flags = np.array([bool(v) and blocked(v) for v in encoded.dictionary.to_pylist()] + [False])
    indices = pc.fill_null(encoded.indices, len(flags) - 1).to_numpy(zero_copy_only=False)
    return flags[indices]


def has_word(urls: pa.Array, words: frozenset[str]) -> np.ndarray:
    """Rows whose URL has a token (a run of letters and digits) equal to a listed word."""
    tokens = pc.split_pattern_regex(pc.fill_null(urls, ""), NOT_A_WORD)
    hits = pc.is_in(pc.list_flatten(tokens), pa.array(sorted(words), pa.string()))
    parents = pc.list_parent_indices(tokens).to_numpy()
    counts = np.bincount(parents, weights=hits.to_numpy(zero_copy_only=False), minlength=len(urls))
    return counts > 0
