"""pii: e-mail addresses, IP addresses and phone numbers in `text` replaced by placeholders.

Each kind is switched on or off and has its own placeholder. The defaults are reserved values that no
real person owns and that this stage never matches again, so running it twice changes nothing:
`email@example.com` (RFC 2606), `192.0.2.1` and `2001:db8::1` (documentation ranges, RFC 5737 / 3849),
`(555) 555-0100` (NANP's fictional range; area code 555 is not a valid number). A value equal to its
placeholder is neither replaced nor counted, so a second run changes and counts nothing. What counts:

- e-mail: an ASCII `local@host.tld` not glued to a longer word, whose last label is a public suffix on
  tldextract's bundled list (never fetched), so `icon@2x.png` or `@media screen` are left alone.
- IPv4: four decimal octets (0-255, no leading zeros) not inside a longer dotted or word run (`1.2.3.4.5`,
  `v1.2.3.4`) and not after a word that numbers things (version, build, section, §, chapter, ...).
  IPv6: a colon run that `ipaddress` parses, with eight groups or `::` plus a digit (times like 17:55:53
  and C++'s `a::b` are not addresses). Addresses
  that are not public (private, loopback, link-local, multicast, reserved, documentation) are kept unless
  `keep_non_public_ips: false`; the kept ones are counted as `pii:ip_non_public_kept`.
- phone: a number the `phonenumbers` library (Google's libphonenumber metadata) finds with leniency VALID
  for one of `phone_regions`, written with a leading `+` or with separators: a bare run of digits (order
  numbers, ISBN-13s, timestamps) or a decimal number (`522.4000000`) is never a phone, and two spaces
  part numbers (the columns of a table). Dates and ISBNs with hyphens fail libphonenumber's validity
  rules. Numbers of fewer than 7 digits, and national numbers without their area code (`555-1234`), are
  not found; obfuscated addresses (`jane at example dot com`) are not e-mails here.

Speed: one RE2 pass over the whole batch (pyarrow.compute) finds the documents that could hold each kind;
only those go through Python's `re` (lookarounds, which RE2 lacks), `ipaddress` and `phonenumbers`. Kinds
run in the order e-mail, IPv6, IPv4, phone, each on the text the previous one left. Counts per kind go to
the stage stats (the run manifest). The stage rewrites `text`, so list it before `tag`, whose character
and word counts then describe the text that is kept.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import tldextract
from pydantic import Field, field_validator

from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns

# Loose RE2 patterns: every value a kind replaces lies in a document its pattern matches.
CANDIDATES = {
    "email": r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]+\.[A-Za-z0-9]",
    "ipv6": r"[0-9A-Fa-f]::|::[0-9A-Fa-f]|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]",
    "ipv4": r"\d\.\d{1,3}\.\d{1,3}\.\d",
    "phone": r"\d(?:\D{0,4}\d){6}",
}

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z][A-Za-z0-9-]{1,62})(?![\w-]|\.[A-Za-z0-9])"
)
OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\w.])(?:{OCTET}\.){{3}}{OCTET}(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?![\w:]|\.\d)")
NUMBERING_WORD = re.compile(
    r"(?i)(?:\b(?:version|release|build|ver|section|sec|chapter|ch|clause|article|art|paragraph|para|"
    r"figure|fig|table|step|rule|item|no)\.?|§)\s*$"
)
PHONE_SEPARATED = re.compile(r"^\+|\D")
DECIMAL = re.compile(r"\d+\.\d+")
# 7 digits or more joined by punctuation and at most one space (a run of spaces parts table columns).
# It starts at a digit, so `re` scans with its fast first-character test; a `+` or `(` before the first
# digit is in the context that the matcher sees, as are the characters that border the number.
PHONE_RUN = re.compile(r"\d(?:[().\-/]?[ \t\u00a0]?[().\-/]?\d){6,}")
CONTEXT = 3


class PiiParams(StageParams):
    emails: bool = True
    ips: bool = Field(default=True, description="IPv4 and IPv6 addresses")
    phones: bool = True
    email_placeholder: str = "email@example.com"
    ipv4_placeholder: str = "192.0.2.1"
    ipv6_placeholder: str = "2001:db8::1"
    phone_placeholder: str = "(555) 555-0100"
    keep_non_public_ips: bool = Field(default=True, description="keep private, loopback, reserved, ...")
    phone_regions: list[str] = Field(default=["US"], min_length=1, description="regions of national numbers")

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: list[str]) -> list[str]:
        known = phonenumbers.SUPPORTED_REGIONS
        unknown = [r for r in regions if r.upper() not in known]
        if unknown:
            raise ValueError(f"unknown phone region(s) {unknown}; use ISO 3166 codes such as US, GB, DE, FR")
        return [r.upper() for r in regions]


class Pii(Stage):
    name = "pii"
    Params = PiiParams
    params: PiiParams
    resources = Resources(cpus=1.0, memory_mb=512)

    def process(self, batch: pa.Table) -> StageResult:
        text = batch.column("text").combine_chunks()
        stats: Counter = Counter()
        for kind, replace in self._replacers().items():
            text = replace_in_candidates(text, CANDIDATES[kind], replace, stats)
        return StageResult(set_columns(batch, {"text": text}), None, stats)

    def _replacers(self) -> dict[str, Callable[[str, Counter], str]]:
        """The switched-on kinds in the order they run, each a `text -> text` that counts what it did."""
        p = self.params
        kinds: dict[str, Callable[[str, Counter], str]] = {}
        if p.emails:
            kinds["email"] = lambda t, s: replace_emails(t, p.email_placeholder, s)
        if p.ips:
            kinds["ipv6"] = lambda t, s: replace_ips(t, IPV6, p.ipv6_placeholder, p.keep_non_public_ips, s)
            kinds["ipv4"] = lambda t, s: replace_ips(t, IPV4, p.ipv4_placeholder, p.keep_non_public_ips, s)
        if p.phones:
            kinds["phone"] = lambda t, s: replace_phones(t, p.phone_regions, p.phone_placeholder, s)
        return kinds


def replace_in_candidates(
    text: pa.Array, candidate: str, replace: Callable[[str, Counter], str], stats: Counter
) -> pa.Array:
    """`replace` on only the documents whose text matches the RE2 `candidate` pattern (one vectorised pass
    over the batch); the others are not touched by Python."""
    hits = pc.fill_null(pc.match_substring_regex(text, candidate), False)
    rows = np.flatnonzero(hits.to_numpy(zero_copy_only=False))
    if not len(rows):
        return text
    new = [replace(text[int(row)].as_py(), stats) for row in rows]
    return pc.replace_with_mask(text, hits, pa.array(new, text.type))


def replace_emails(text: str, placeholder: str, stats: Counter) -> str:
    def swap(match: re.Match) -> str:
        if match.group(0) == placeholder or not is_public_suffix(match.group(1).lower()):
            return match.group(0)
        stats["pii:email"] += 1
        return placeholder

    return EMAIL.sub(swap, text)


@lru_cache(maxsize=4096)
def is_public_suffix(label: str) -> bool:
    """True when `label` is a top-level public suffix (com, uk, xn--p1ai), per tldextract's bundled list."""
    return _extractor()(f"x.{label}").suffix == label


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def replace_ips(
    text: str, pattern: re.Pattern, placeholder: str, keep_non_public: bool, stats: Counter
) -> str:
    def swap(match: re.Match) -> str:
        address = parse_ip(match.group(0))
        if address is None or match.group(0) == placeholder or after_numbering_word(text, match.start()):
            return match.group(0)
        if keep_non_public and not is_public(address):
            stats["pii:ip_non_public_kept"] += 1
            return match.group(0)
        stats[f"pii:ipv{address.version}"] += 1
        return placeholder

    return pattern.sub(swap, text)


def after_numbering_word(text: str, start: int) -> bool:
    """`version 1.2.3.4`, `section 3.2.1.4`, `§ 1.2.3.4`: a four-part version or section number."""
    return NUMBERING_WORD.search(text, max(0, start - 12), start) is not None


def parse_ip(candidate: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a candidate spells, or None; an IPv6 needs eight groups, or `::` and a digit."""
    full_or_compressed = candidate.count(":") == 7 or ("::" in candidate and re.search(r"\d", candidate))
    if ":" in candidate and not full_or_compressed:
        return None
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast: `is_global` alone counts multicast (e.g. 230.0.0.4) as global."""
    return address.is_global and not address.is_multicast


def replace_phones(text: str, regions: list[str], placeholder: str, stats: Counter) -> str:
    spans: list[tuple[int, int]] = []
    for start, stop in phone_runs(text):
        spans += phones_in(text, start, stop, regions, spans)
    if not spans:
        return text
    stats["pii:phone"] += len(spans)
    parts, last = [], 0
    for start, end in sorted(spans):
        parts += [text[last:start], placeholder]
        last = end
    return "".join([*parts, text[last:]])


def phone_runs(text: str) -> list[tuple[int, int]]:
    """Spans of digits and phone punctuation holding 7 digits or more, each with a little context: the
    matcher then reads a few dozen characters, not the whole document (4x faster on real web text)."""
    return [(max(0, run.start() - CONTEXT), run.end() + CONTEXT) for run in PHONE_RUN.finditer(text)]


def phones_in(
    text: str, start: int, stop: int, regions: list[str], found: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Valid, separated phone numbers in text[start:stop] for any region, as spans of the whole text."""
    spans = [(start + a, start + b) for a, b in phones_in_window(text[start:stop], tuple(regions))]
    return [span for span in spans if not overlaps(found, *span)]


@lru_cache(maxsize=1 << 16)
def phones_in_window(window: str, regions: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Spans of the phone numbers in a short window. Cached: a site's footer number, on each of its pages,
    is parsed once per worker."""
    spans: list[tuple[int, int]] = []
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID):
            if is_written_as_phone(match.raw_string) and not overlaps(spans, match.start, match.end):
                spans.append((match.start, match.end))
    return tuple(spans)


def is_written_as_phone(raw: str) -> bool:
    """A leading `+` or a separator, and not a decimal number (`522.4000000` is a measurement)."""
    return PHONE_SEPARATED.search(raw) is not None and DECIMAL.fullmatch(raw) is None


def overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """True when [start, end) overlaps a span already found (another region found the same number)."""
    return any(start < b and a < end for a, b in spans)
