"""tag: the metadata every later decision groups by: site, tld, sizes, and the mixing `domain`.

`site` is the registered domain under the public suffix (tldextract's bundled list, never fetched), so
`en.wikipedia.org` and `de.wikipedia.org` are one site. Domain rules are tried in order and the first
match wins; a document no rule matches keeps its input's `domain:`, else gets `default`.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc
import tldextract
from pydantic import Field, field_validator, model_validator

from curate.schema import DomainName
from curate.stages.base import Stage, StageParams, StageResult, set_columns
from curate.stages.registry import register
from curate.utf8_arrays import word_counts


def check_re2(pattern: str) -> str:
    """Rules run on Arrow's RE2 engine: reject patterns RE2 cannot compile (e.g. look-arounds) up front."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except pa.ArrowInvalid as error:
        raise ValueError(f"regex {pattern!r} is not valid RE2 syntax ({error})") from None
    return pattern


class DomainRule(StageParams):
    """All matchers given must match (AND). `input` is an input's `name:`; `site` a registered domain."""

    domain: DomainName
    input: str | None = None
    site: list[str] | None = None
    url_glob: str | None = None
    url_regex: str | None = None

    @field_validator("site", mode="before")
    @classmethod
    def _listify(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    @field_validator("url_regex")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return None if value is None else check_re2(value)

    @model_validator(mode="after")
    def _has_a_matcher(self) -> DomainRule:
        if not (self.input or self.site or self.url_glob or self.url_regex):
            raise ValueError("a domain rule needs at least one of input, site, url_glob, url_regex")
        return self


class DomainParams(StageParams):
    default: DomainName = "web"
    rules: list[DomainRule] = []


class TagParams(StageParams):
    domain: DomainParams = Field(default_factory=DomainParams)


@register
class Tag(Stage):
    name = "tag"
    Params = TagParams
    params: TagParams

    def output_fields(self) -> list[pa.Field]:
        return [
            pa.field("site", pa.string()),
            pa.field("tld", pa.string()),
            pa.field("n_chars", pa.int64()),
            pa.field("n_words", pa.int64()),
            pa.field("n_lines", pa.int64()),
        ]

    def setup(self) -> None:
        word_counts(["a b"])  # loads (or compiles) the kernel once per worker
        self._extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def process(self, batch: pa.Table) -> StageResult:
        text = batch.column("text")
        site, tld = self._sites(batch.column("url"))
        domain = assign_domains(
            self.params.domain, batch.column("source"), site, batch.column("url"), batch.column("domain")
        )
        columns = {
            "site": site,
            "tld": tld,
            "n_chars": pc.utf8_length(text).cast(pa.int64()),
            "n_words": pa.array(word_counts(text), pa.int64()),
            "n_lines": pc.add(pc.count_substring(text, "\n"), 1).cast(pa.int64()),
            "domain": domain,
        }
        stats = Counter({f"domain:{d}": n for d, n in Counter(domain.to_pylist()).items()})
        return StageResult(set_columns(batch, columns), stats=stats)

    def _sites(self, urls: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
        pairs = [self._site_of(url) for url in urls.to_pylist()]
        return pa.array([p[0] for p in pairs], pa.string()), pa.array([p[1] for p in pairs], pa.string())

    def _site_of(self, url: str | None) -> tuple[str | None, str | None]:
        if not url:
            return None, None
        return _cached_site(self._extract, url.split("/", 3)[2] if "//" in url else url)


@lru_cache(maxsize=200_000)
def _cached_site(extract: tldextract.TLDExtract, host: str) -> tuple[str | None, str | None]:
    """Hosts repeat heavily within a crawl, so caching by host makes site tagging nearly free."""
    result = extract(host)
    site = result.top_domain_under_public_suffix or result.domain or None
    return (site.lower() if site else None), (result.suffix.lower() or None)


def assign_domains(
    params: DomainParams,
    source: pa.ChunkedArray,
    site: pa.Array,
    url: pa.ChunkedArray,
    input_domain: pa.ChunkedArray,
) -> pa.Array:
    domain = pc.fill_null(input_domain.combine_chunks(), params.default)
    for rule in reversed(params.rules):
        matched = pc.fill_null(_rule_mask(rule, source, site, url), False)
        domain = pc.if_else(matched, pa.scalar(rule.domain), domain)
    return domain


def _rule_mask(rule: DomainRule, source: pa.ChunkedArray, site: pa.Array, url: pa.ChunkedArray) -> pa.Array:
    mask = pa.array([True] * len(site))
    if rule.input:
        mask = pc.and_(mask, pc.starts_with(source, rule.input + "/"))
    if rule.site:
        mask = pc.and_(mask, pc.is_in(site, pa.array(rule.site)))
    if rule.url_glob:
        mask = pc.and_(mask, pc.match_substring_regex(url, glob_to_re2(rule.url_glob)))
    if rule.url_regex:
        mask = pc.and_(mask, pc.match_substring_regex(url, rule.url_regex))
    return mask


def glob_to_re2(pattern: str) -> str:
    """A shell glob (`*`, `?`) as an anchored RE2 pattern; fnmatch's own output uses Python-only syntax."""
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return "(?s)^" + "".join(parts) + "$"
