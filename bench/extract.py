"""`curate bench extract`: the WARC reader's HTML extractors (`extractor:` resiliparse | trafilatura) measured
for quality and speed on real pages.

Quality is bag-of-words F1 of each extractor's text against the page's main text, on the ten real pages in
../shared/data/web/html (five Common Crawl pages, five Wikipedia articles). The main text is never stored:
each page has a rule (`PAGE_RULES`), checked by hand against its HTML, naming the elements that hold the main
text and the boilerplate inside them; the reference text is rendered from those elements at run time.
Words are lower-cased runs of letters and digits, and each CJK character is a word of its own (Chinese and
Japanese are not written with spaces), so F1 means the same on the Chinese pages as on the English ones.

Speed is MB of HTML (the response bodies as served) per CPU-second of extraction, one thread
(`time.process_time`, steady under a shared machine's load, unlike wall time, which is given too), on the
HTML responses of the real WARC files and on the ten pages; decoding the charset is done once beforehand
and not timed, as both extractors share it. Each timing is the median of `repeats`.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastwarc.warc import ArchiveIterator, WarcRecordType
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree, NodeType

from bench.machine import machine
from curate.errors import ConfigError
from curate.readers.warc import (
    DEFAULT_EXTRACTOR,
    EXTRACTORS,
    RESILIPARSE_OPTIONS,
    TEXT_TYPES,
    TRAFILATURA_OPTIONS,
    Extractor,
    extract_main_text,
    html_to_text,
    response_charset,
)
from curate.textsources import shared_data_dir

WARC_FILES = ("dolma_sample-0000.warc.gz", "dolma_sample-0001.warc.gz", "whirlwind.warc.gz")
PAGES_INPUT = "html pages"


@dataclass(frozen=True)
class MainTextRule:
    """Where a page's main text is: CSS selectors of the elements holding it (their text in this order) and
    of the boilerplate inside them to leave out; `why` records what was checked by eye in the HTML."""

    main: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    why: str = ""


# Wikipedia (all five pages share the Vector 2022 markup, checked on each): the title and the article body,
# without edit links, citation marks, infoboxes and sidebars, navigation and maintenance boxes, the table
# of contents, hatnotes ("For other uses, see ..."), and everything from the first end section (See also,
# Notes, References, Further reading, External links) on.
_END_SECTIONS = ("See_also", "Notes", "References", "Further_reading", "External_links")
WIKIPEDIA = MainTextRule(
    main=("#firstHeading", "#mw-content-text .mw-parser-output"),
    exclude=(
        ".mw-editsection", "sup.reference", ".reflist", ".infobox", ".sidebar", ".navbox", ".vertical-navbox",
        ".metadata", ".ambox", ".sistersitebox", ".noprint", ".toc", "#toc", ".hatnote", ".shortdescription",
        ".mw-empty-elt",
        *(f".mw-parser-output > h2:has(#{section})" for section in _END_SECTIONS),
        *(f".mw-parser-output > h2:has(#{section}) ~ *" for section in _END_SECTIONS),
    ),
    why="title + article body; references, navigation boxes, infobox, edit links and end sections left out",
)  # fmt: skip

PAGE_RULES: dict[str, MainTextRule] = {
    "cc_page1.html": MainTextRule(
        main=("h1", ".DSContent"),
        why="an app download page: its name (h1) and its description block (software intro, features, "
        "highlights); the download box, recommendations, comments and related apps are boilerplate",
    ),
    "cc_page2.html": MainTextRule(
        main=("h1",),
        why="a news article whose body element is empty in the HTML: only its headline is main text (the "
        "byline, prev/next links and 'related reading' list are not)",
    ),
    "cc_page3.html": MainTextRule(
        main=("form#feedback_form",),
        why="a portal's 'report to the administrator' page: the form (heading, labels, choices, buttons) is "
        "its only content; dates, holidays, tag cloud, banners and footer links are site furniture",
    ),
    "cc_page4.html": MainTextRule(
        main=("article > section > div > a",),
        why="a 'company profile' page whose body element is empty in the HTML: only its section heading is "
        "main text (breadcrumb, 'related reading' list, sidebar and footer are not)",
    ),
    "cc_page5.html": MainTextRule(
        main=(".content_main",),
        exclude=(".cm4all_com_widgets_Counter", ".cm4all_com_widgets_News a"),
        why="a small firm's home page: the main column (welcome heading, three paragraphs, one news item) "
        "without the visitor counter and the news box's 'back to overview' links",
    ),
    **{f"wikipedia_page{number}.html": WIKIPEDIA for number in range(1, 6)},
}

_ALWAYS_SKIPPED = ("script", "style", "noscript", "template")
# Elements whose text runs on with their neighbours'; every other element is a block that starts a line.
_INLINE = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "em", "font", "i", "img", "kbd", "label", "mark",
    "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "tt", "u", "var",
})  # fmt: skip
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def decode_html(body: bytes) -> str:
    """A saved page's HTML as text, its charset detected (the pages carry no HTTP headers)."""
    return bytes_to_str(body, detect_encoding(body))


def reference_text(html: str, rule: MainTextRule) -> str:
    """The page's main text by its rule: each main element rendered as text, block elements as lines."""
    tree = HTMLTree.parse(html)
    # found before any text is taken, so `h2 ~ *` still sees the heading it hangs on
    skipped = set(tree.body.query_selector_all(", ".join((*rule.exclude, *_ALWAYS_SKIPPED))))
    parts = []
    for selector in rule.main:
        nodes = tree.body.query_selector_all(selector)
        if not nodes:
            raise ValueError(
                f"main-text selector {selector!r} matches nothing: not the page that was checked"
            )
        parts.extend(_rendered(node, skipped) for node in nodes)
    return "\n".join(parts)


def _rendered(node: Any, skipped: set[Any]) -> str:
    """Text of a node's subtree without the `skipped` elements and what they hold."""
    pieces: list[str] = []

    def walk(parent: Any) -> None:
        for child in parent.child_nodes:
            if child.type == NodeType.TEXT:
                pieces.append(child.text)
            elif child.type == NodeType.ELEMENT and child not in skipped:
                block = child.tag not in _INLINE
                pieces.append("\n" if block else "")
                walk(child)
                pieces.append("\n" if block else "")

    walk(node)
    return re.sub(r"\n\s*\n+", "\n", "".join(pieces)).strip()


def bag_of_words(text: str) -> Counter[str]:
    return Counter(_WORD.findall(text.lower()))


def bag_f1(reference: str, candidate: str) -> float:
    """F1 of the candidate's words against the reference's, counting repeats (a multiset overlap)."""
    expected, found = bag_of_words(reference), bag_of_words(candidate)
    common = sum((expected & found).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(found.values()), common / sum(expected.values())
    return 2 * precision * recall / (precision + recall)


def page_f1(html_dir: Path, extractor: Extractor) -> dict[str, float]:
    """F1 of the extractor on each ruled page, by page name."""
    scores = {}
    for name in PAGE_RULES:
        html, reference = ruled_page(html_dir / name)
        scores[name] = round(bag_f1(reference, extract_main_text(html, extractor)), 4)
    return scores


@cache
def ruled_page(path: Path) -> tuple[str, str]:
    """A ruled page's HTML and its reference text (kept: every extractor is scored against the same)."""
    html = decode_html(path.read_bytes())
    return html, reference_text(html, PAGE_RULES[path.name])


@dataclass(frozen=True)
class HtmlPage:
    size: int  # bytes of HTML as served, before decoding: the speed figures' denominator
    html: str


def warc_pages(path: Path) -> list[HtmlPage]:
    """The HTML responses the WARC reader extracts (HTTP 200, a text type), decoded as it decodes them."""
    pages = []
    with path.open("rb") as handle:
        for record in ArchiveIterator(handle, record_types=WarcRecordType.response, parse_http=True):
            content_type = (record.http_content_type or "").lower()
            if record.http_headers.status_code != 200 or not content_type.startswith(TEXT_TYPES):
                continue
            body = record.reader.read()
            pages.append(HtmlPage(len(body), bytes_to_str(body, response_charset(record, body))))
    return pages


def saved_pages(html_dir: Path) -> list[HtmlPage]:
    pages = []
    for name in PAGE_RULES:
        body = (html_dir / name).read_bytes()
        pages.append(HtmlPage(len(body), decode_html(body)))
    return pages


def time_extraction(pages: Sequence[HtmlPage], extract: Callable[[str], str], repeats: int) -> dict[str, Any]:
    """Median CPU and wall seconds of extracting every page once, and the MB of HTML per CPU-second."""
    cpu_runs, wall_runs = [], []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        for page in pages:
            extract(page.html)
        cpu_runs.append(time.process_time() - cpu)
        wall_runs.append(time.perf_counter() - wall)
    cpu_s, wall_s = statistics.median(cpu_runs), statistics.median(wall_runs)
    megabytes = sum(page.size for page in pages) / 1e6
    return {
        "cpu_seconds": round(cpu_s, 4),
        "wall_seconds": round(wall_s, 4),
        "mb_s_per_core": round(megabytes / cpu_s, 3) if cpu_s else None,
    }


def bench_extract(shared: Path | None = None, repeats: int = 3) -> dict[str, Any]:
    """F1 and MB/s per core of every extractor, on the real WARC files and pages of ../shared/data/web."""
    shared = shared or shared_data_dir()
    if shared is None:
        raise ConfigError("../shared/data is absent; set CURATE_SHARED_DATA to the folder holding web/")
    web = shared / "web"
    html_dir = web / "html"
    inputs = {name: warc_pages(web / name) for name in WARC_FILES}
    inputs[PAGES_INPUT] = saved_pages(html_dir)
    figures: dict[str, Any] = {
        "machine": machine(),
        "default": DEFAULT_EXTRACTOR,
        "options": {"resiliparse": RESILIPARSE_OPTIONS, "trafilatura": TRAFILATURA_OPTIONS},
        "inputs": {
            name: {"pages": len(pages), "html_mb": round(sum(p.size for p in pages) / 1e6, 3)}
            for name, pages in inputs.items()
        },
        "extractors": {},
    }
    for extractor in EXTRACTORS:
        figures["extractors"][extractor] = extractor_figures(extractor, inputs, html_dir, repeats)
    figures["machine"]["load_average_1m_after"] = machine()["load_average_1m"]
    return figures


def extractor_figures(
    extractor: Extractor, inputs: dict[str, list[HtmlPage]], html_dir: Path, repeats: int
) -> dict[str, Any]:
    """F1 per page and its means (all, Common Crawl, Wikipedia); speed per input and over all of them."""
    scores = page_f1(html_dir, extractor)  # first, so the import it makes (trafilatura's: ~1 s) is not timed
    extract = html_to_text(extractor)
    speed = {name: time_extraction(pages, extract, repeats) for name, pages in inputs.items()}
    megabytes = sum(page.size for pages in inputs.values() for page in pages) / 1e6
    return {
        "f1_mean": _mean_f1(scores, ""),
        "f1_cc_mean": _mean_f1(scores, "cc_"),
        "f1_wikipedia_mean": _mean_f1(scores, "wikipedia_"),
        "f1": scores,
        "speed": speed,
        "mb_s_per_core_all": round(megabytes / sum(run["cpu_seconds"] for run in speed.values()), 3),
    }


def _mean_f1(scores: dict[str, float], prefix: str) -> float:
    return round(statistics.mean(f1 for page, f1 in scores.items() if page.startswith(prefix)), 4)


def format_report(figures: dict[str, Any]) -> str:
    """One table: F1 (all, CC, Wikipedia) and MB/s per core per input, per extractor."""
    inputs = list(figures["inputs"])
    header = ["extractor", "F1", "F1 cc", "F1 wiki", *(f"MB/s {name}" for name in inputs), "MB/s all"]
    rows = [header]
    for name, result in figures["extractors"].items():
        marker = " (default)" if name == figures["default"] else ""
        speeds = [str(result["speed"][input_name]["mb_s_per_core"]) for input_name in inputs]
        f1s = [str(result[key]) for key in ("f1_mean", "f1_cc_mean", "f1_wikipedia_mean")]
        rows.append([name + marker, *f1s, *speeds, str(result["mb_s_per_core_all"])])
    sizes = ", ".join(
        f"{name}: {info['pages']} pages, {info['html_mb']} MB" for name, info in figures["inputs"].items()
    )
    lines = [" | ".join(row) for row in rows]
    return "\n".join([*lines, f"inputs: {sizes}", f"machine: {figures['machine']}"])
