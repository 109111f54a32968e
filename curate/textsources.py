"""Real text that exists on every machine, plus ../shared/data when it is there.

Tests, the demo and the benchmarks draw documents from here and never from files in the repository:
gensim's wheel ships Wikipedia pages and news, the standard library's own source is real code, and the
shared data folder adds web shards, books and more. Nothing here downloads anything.
"""

from __future__ import annotations

import bz2
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

SHARED_ENV = "CURATE_SHARED_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """`$CURATE_SHARED_DATA` when set (a missing folder there means "no shared data"), else
    ../shared/data beside the repository or the working directory; None when absent."""
    if SHARED_ENV in os.environ:
        candidates = [Path(os.environ[SHARED_ENV])]
    else:
        candidates = [REPO_ROOT.parent / "shared" / "data", Path("../shared/data")]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def gensim_test_file(name: str) -> Path:
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data" / name


def wikipedia_pages() -> Iterator[tuple[str, str]]:
    """(title, plain text) of the 206 Wikipedia pages in gensim's wheel, markup stripped by gensim."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = gensim_test_file("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    with bz2.open(path, "rb") as handle:
        for title, text, _page_id in extract_pages(handle):
            plain = filter_wiki(text).strip()
            if plain and not plain.lower().startswith("#redirect"):
                yield title, plain


def news_texts() -> Iterator[str]:
    """The 299 news texts of gensim's Lee background corpus, one per line."""
    with open(gensim_test_file("lee_background.cor"), encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                yield line.strip()


def stdlib_sources(limit: int | None = None) -> Iterator[tuple[str, str]]:
    """(relative path, source) of the Python standard library's modules, in a stable order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    count = 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            yield path.name, text
            count += 1
            if limit is not None and count >= limit:
                return


def book_passages(books_dir: Path, passage_chars: int = 5000, shift: int = 0) -> Iterator[tuple[str, str]]:
    """(book/offset, passage) cut at paragraph breaks near `passage_chars`; `shift` moves the cut points."""
    for path in sorted(books_dir.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        start = shift % passage_chars
        while start < len(text):
            end = text.find("\n\n", start + passage_chars)
            end = len(text) if end < 0 else end
            passage = text[start:end].strip()
            if passage:
                yield f"{path.stem}/{start}", passage
            start = end + 2
