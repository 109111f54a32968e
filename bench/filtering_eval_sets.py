"""The held-out evaluation sets of `curate bench filtering`: Wikipedia pages the models never saw (prose
and reference lists apart), WikiText-2's test articles, gensim's enwiki sample, unseen book passages and
held-out web documents, each capped to the same number of characters."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from bench.filtering_pool import HELD_OUT_DOMAIN, FilterModels, corpus_rows

REFERENCES_HEADING = re.compile(
    r"^(References|Notes|See also|Further reading|External links|Citations|Sources)\s*$", re.MULTILINE
)


def write_texts(path: Path, texts: list[str]) -> Path:
    """A JSONL target set for :func:`trainer.proxy.tokenize_target_set` (rewritten only on change)."""
    payload = b"".join(orjson.dumps({"text": t}) + b"\n" for t in texts if t.strip())
    if not path.exists() or path.read_bytes() != payload:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    return path


def capped(texts: list[str], max_chars: int) -> list[str]:
    """Every k-th non-empty text so the sample spans the whole set, then texts until ``max_chars`` (the
    last one cut). k leaves at least 4 texts to choose from, so a set of a few long pages is never
    reduced to its first page."""
    texts = [t for t in texts if t.strip()]
    total = sum(len(t) for t in texts)
    stride = max(1, min(int(total / max_chars), len(texts) // 4))
    out, size = [], 0
    for text in texts[::stride]:
        if size >= max_chars:
            break
        out.append(text[: max_chars - size])
        size += len(out[-1])
    return out


def wikipedia_html_pages(shared: Path) -> list[str]:
    """Main text of the raw Wikipedia HTML pages: Wikipedia no filter model was trained on."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    pages = sorted((shared / "web" / "html").glob("wikipedia_page*.html"))
    return [
        extract_plain_text(HTMLTree.parse(p.read_text(encoding="utf-8", errors="replace")), main_content=True)
        for p in pages
    ]


def split_references(page: str) -> tuple[str, str]:
    """(article prose, the tail from the first References / Notes / See also ... heading): a page's
    citation lists are bibliographic records, not prose, and are scored apart."""
    found = REFERENCES_HEADING.search(page)
    cut = found.start() if found else len(page)
    return page[:cut], page[cut:]


def enwiki_articles() -> list[str]:
    """The 206 pages of ``domains/enwiki_articles_sample.xml.bz2`` (the same file gensim ships), markup
    stripped: article prose, in the filter models' training data, never in the proxy's."""
    from filters import corpora

    return [text for _, text in corpora.gensim_wikipedia()]


def wikitext_test_articles(shared: Path) -> list[str]:
    """WikiText-2 test articles, tokenisation undone (``filters.corpora.wikitext_articles`` reads valid
    and test; only test is wanted). The filter models trained on these; the proxy never does."""
    from filters import corpora

    path = shared / "domains" / "wikitext2_test.txt"
    if not path.is_file():
        return []
    articles: list[str] = []
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.fullmatch(r" = ([^=].*?) = ", line):
            if lines:
                articles.append("\n".join(lines))
            lines = []
        elif line.strip() and not line.startswith(" = "):
            lines.append(corpora.untokenize_wikitext(line))
    if lines:
        articles.append("\n".join(lines))
    return articles


def books_seen_chars(models: FilterModels) -> int:
    """Characters of the sorted Gutenberg books the filter models trained on (their cards' books_mb)."""
    from filters.model_registry import find_model

    seen = 0.0
    for name in models.names():
        model = find_model(name, models.home)
        if model is not None:
            seen = max(seen, float(model.card.params.get("books_mb", 0.0)))
    return int(seen * 1e6)


def unseen_book_passages(shared: Path, seen_chars: int) -> list[str]:
    """Passages of books wholly past the filter models' book sample (books they never read)."""
    from filters import corpora

    total, passages, seen_books = 0, [], set()
    for key, passage in corpora.book_documents(shared / "domains" / "books"):
        book = key.split("/")[1]
        if total < seen_chars:
            seen_books.add(book)
        elif book not in seen_books:
            passages.append(passage)
        total += len(passage)
    return passages


def eval_sets(
    shared: Path, folder: Path, corpus: Path, max_chars: int, models: FilterModels
) -> dict[str, Path]:
    """The high-quality target sets (JSONL) and the held-out web slice, each capped at ``max_chars``."""
    held_out = corpus_rows(corpus, HELD_OUT_DOMAIN, ("id", "text")).column("text").to_pylist()
    pages = [split_references(page) for page in wikipedia_html_pages(shared)]
    return {
        "wiki_html": write_texts(folder / "wiki_html.jsonl", capped([b for b, _ in pages], max_chars)),
        "wiki_html_refs": write_texts(
            folder / "wiki_html_refs.jsonl", capped([r for _, r in pages], max_chars)
        ),
        "enwiki": write_texts(folder / "enwiki.jsonl", capped(enwiki_articles(), max_chars)),
        "wikitext2": write_texts(
            folder / "wikitext2.jsonl", capped(wikitext_test_articles(shared), max_chars)
        ),
        "books": write_texts(
            folder / "books.jsonl", capped(unseen_book_passages(shared, books_seen_chars(models)), max_chars)
        ),
        "web_heldout": write_texts(folder / "web_heldout.jsonl", capped(held_out, max_chars)),
    }
