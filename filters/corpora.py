"""Training and evaluation text for the filter models, from packages and ../shared/data only.

Why one module: the KenLM reference model, the quality classifier's positives and negatives and the
toxicity classifier all draw on the same few real sources, and each source needs the same small clean-up
wherever it is used (Gutenberg licence boilerplate off books, WikiText's ` @-@ ` tokenisation undone,
GSM8K's `<<48/2=24>>` calculator annotations removed). Every function yields `(source, text)` pairs in a
stable order, so a model trained twice on the same machine sees the same data, and its card can record
checksums of exactly what it saw.
"""

from __future__ import annotations

import copyreg
import csv
import gzip
import html
import io
import json
import pickle
import re
import zlib
from collections.abc import Iterator
from functools import lru_cache
from itertools import islice
from pathlib import Path

from curate.readers.fields import FieldMap
from curate.readers.formats import infer_format, reader_for
from curate.readers.records import RawDoc
from curate.textsources import gensim_test_file, news_texts, shared_data_dir, wikipedia_pages

Doc = tuple[str, str]

# ------------------------------------------------------------------------------------- reference text


def gensim_wikipedia() -> Iterator[Doc]:
    """The Wikipedia pages in gensim's wheel (present on every machine), without the bold/italic quote
    marks gensim's markup filter leaves behind."""
    yield from _gensim_wikipedia()


@lru_cache(maxsize=1)
def _gensim_wikipedia() -> tuple[Doc, ...]:
    """Parsed once per process: gensim's wiki markup filter takes seconds."""
    return tuple(
        (f"gensim-wikipedia/{title}", re.sub(r"'{2,}", "", text)) for title, text in wikipedia_pages()
    )


def wikitext_articles(domains: Path) -> Iterator[Doc]:
    """WikiText-2 test+valid articles, split at top-level ` = Title = ` lines, tokenisation undone.

    `<unk>` tokens are dropped: they are an artefact of WikiText's vocabulary cut, not of Wikipedia.
    """
    for name in ("wikitext2_valid.txt", "wikitext2_test.txt"):
        path = domains / name
        if not path.is_file():
            continue
        title, lines = "", []
        for line in path.read_text(encoding="utf-8").splitlines():
            heading = re.fullmatch(r" = ([^=].*?) = ", line)
            if heading:
                if lines:
                    yield f"wikitext2/{title}", "\n".join(lines)
                title, lines = heading.group(1), []
            elif line.strip() and not line.startswith(" = "):
                lines.append(untokenize_wikitext(line))
        if lines:
            yield f"wikitext2/{title}", "\n".join(lines)


def untokenize_wikitext(line: str) -> str:
    line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".").replace("<unk>", "")
    line = re.sub(r" ([.,;:!?)\]'])", r"\1", line)
    line = re.sub(r"([(\[]) ", r"\1", line)
    return re.sub(r"  +", " ", line).strip()


def strip_gutenberg(text: str) -> str:
    """The book between Project Gutenberg's `*** START OF` and `*** END OF` lines (whole text if absent)."""
    start = re.search(r"^\*\*\* ?START OF.*$", text, flags=re.MULTILINE)
    end = re.search(r"^\*\*\* ?END OF.*$", text, flags=re.MULTILINE)
    begin = start.end() if start else 0
    finish = end.start() if end and end.start() > begin else len(text)
    return text[begin:finish].strip()


def reflow(text: str) -> str:
    """Hard-wrapped paragraphs joined into one line each (a language model should see sentences whole)."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    joined = (re.sub(r"\s*\n\s*", " ", p).strip() for p in paragraphs)
    return "\n".join(p for p in joined if p)


def book_documents(books: Path, passage_chars: int = 4000, max_chars: int | None = None) -> Iterator[Doc]:
    """Reflowed passages of the Gutenberg books (licence text removed); `max_chars` caps the total."""
    total = 0
    for path in sorted(books.glob("*.txt")):
        paragraphs = reflow(strip_gutenberg(path.read_text(encoding="utf-8", errors="replace"))).split("\n")
        for index, passage in enumerate(passages(paragraphs, passage_chars)):
            if max_chars is not None and total >= max_chars:
                return
            total += len(passage)
            yield f"books/{path.stem}/{index}", passage


def passages(paragraphs: list[str], passage_chars: int) -> Iterator[str]:
    """Consecutive paragraphs joined until a passage reaches `passage_chars` (the last may be shorter)."""
    current: list[str] = []
    size = 0
    for paragraph in paragraphs:
        current.append(paragraph)
        size += len(paragraph)
        if size >= passage_chars:
            yield "\n".join(current)
            current, size = [], 0
    if current:
        yield "\n".join(current)


def gsm8k_documents(domains: Path, split: str = "train") -> Iterator[Doc]:
    """Grade-school maths: question, then the worked answer without calculator annotations."""
    path = domains / f"gsm8k_{split}.jsonl"
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            record = json.loads(line)
            answer = re.sub(r"<<[^>]*>>", "", record["answer"]).replace("#### ", "Answer: ")
            yield f"gsm8k-{split}/{index}", f"{record['question']}\n{answer}"


def arxiv_documents(domains: Path, min_chars: int = 200) -> Iterator[Doc]:
    path = domains / "arxiv_sample.jsonl"
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            text = json.loads(line).get("text", "")
            if len(text) >= min_chars:
                yield f"arxiv/{index}", text


def lm_reference_documents(shared: Path | None, books_chars: int | None) -> Iterator[Doc]:
    """KenLM's reference corpus: Wikipedia (gensim; + WikiText-2) and books, as CCNet used Wikipedia."""
    yield from gensim_wikipedia()
    if shared is not None:
        yield from wikitext_articles(shared / "domains")
        if books_chars != 0:
            yield from book_documents(shared / "domains" / "books", max_chars=books_chars)


def news_documents() -> Iterator[Doc]:
    for index, text in enumerate(news_texts()):
        yield f"gensim-news/{index}", text


# ------------------------------------------------------------------------------------------- web text


def web_documents(shared: Path | None, min_chars: int = 200) -> Iterator[Doc]:
    """Every readable document of ../shared/data/web (JSONL, WARC, WET), through curate's own readers."""
    if shared is None or not (shared / "web").is_dir():
        return
    for path in sorted((shared / "web").iterdir()):
        fmt = infer_format(path)
        if fmt is None or not path.is_file():
            continue
        for item in reader_for(fmt)(path, FieldMap()):
            if isinstance(item, RawDoc) and len(item.text.strip()) >= min_chars:
                yield f"web/{path.name}/{item.offset}", item.text


def newsgroup_posts() -> Iterator[Doc]:
    """The 200 Usenet posts (alt.atheism, sci.space) of the 20 Newsgroups sample in gensim's wheel, header
    block cut off: real forum discussion, quotes and signatures included, as web forums have them."""
    yield from _newsgroup_posts()


@lru_cache(maxsize=1)
def _newsgroup_posts() -> tuple[Doc, ...]:
    path = gensim_test_file("mini_newsgroup")
    if not path.is_file():
        return ()
    bunch = _BunchUnpickler(io.BytesIO(zlib.decompress(path.read_bytes())), encoding="latin1").load()
    posts = (post.split("\n\n", 1)[-1].strip() for post in bunch["data"])
    return tuple((f"newsgroup/{index}", post) for index, post in enumerate(posts) if post)


class _Ignored:
    """Stands in for the pickle's numpy arrays (the class labels), which are not needed."""

    def __init__(self, *args: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class _BunchUnpickler(pickle.Unpickler):
    """Reads the scikit-learn `Bunch` gensim pickled, without scikit-learn or numpy: the Bunch becomes a
    dict, numpy objects are ignored, and any other class is refused (unpickling can run code)."""

    def find_class(self, module: str, name: str) -> object:
        if module.startswith("sklearn.") and name == "Bunch":
            return dict
        if (module, name) == ("copy_reg", "_reconstructor"):
            return copyreg._reconstructor  # type: ignore[attr-defined]
        if (module, name) == ("__builtin__", "dict"):
            return dict
        if module.startswith("numpy"):
            return _Ignored
        raise pickle.UnpicklingError(f"{module}.{name} is not expected in gensim's newsgroup sample")


# ---------------------------------------------------------------------------------------- toxic text


def clean_social(text: str) -> str:
    """Tweets and forum lines without retweet markers, @handles, URLs and HTML entities: these say
    where a text came from, not whether it is toxic, and would let a classifier learn the source."""
    text = html.unescape(html.unescape(text))
    text = re.sub(r"\bRT\b:?", " ", text)
    text = re.sub(r"@\w+:?", " ", text)
    text = re.sub(r"https?://\S+", " ", text)
    return re.sub(r"\s+", " ", text).strip(' !:"')


def davidson_examples(toxicity: Path) -> Iterator[tuple[str, int]]:
    """Davidson et al. tweets: class 0 (hate speech) and 1 (offensive) -> toxic 1; 2 (neither) -> 0."""
    path = toxicity / "davidson_labeled_data.csv"
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            text = clean_social(row["tweet"])
            if len(text.split()) >= 3:
                yield text, 0 if row["class"] == "2" else 1


def stormfront_examples(toxicity: Path) -> Iterator[tuple[str, int]]:
    """Stormfront sentences: `hate` -> 1, `noHate` -> 0; `relation` (hateful only with its neighbours)
    and `idk/skip` are left out because their label does not describe the sentence alone."""
    path = toxicity / "stormfront_hate_sentences.csv"
    if not path.is_file():
        return
    labels = {"hate": 1, "noHate": 0}
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["label"] in labels and len(row["text"].split()) >= 3:
                yield clean_social(row["text"]), labels[row["label"]]


def fourchan_threads(toxicity: Path) -> Iterator[Doc]:
    """The 424 4chan threads (a real toxic web domain), post headers (`Anonymous 04/26/19(Fri)...`)
    removed so a model learns the language, not the board's timestamp format."""
    path = toxicity / "4chan_threads.jsonl.gz"
    if not path.is_file():
        return
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            text = json.loads(line)["text"]
            text = re.sub(r"(?m)^Anonymous \d\d/\d\d/\d\d\(\w+\)[\d:]+ no\.\d+:?\s*", "", text)
            text = re.sub(r">>\d+", " ", text)
            yield f"4chan/{index}", text


def chunk_lines(text: str, words: int) -> Iterator[str]:
    """Consecutive lines grouped into chunks of about `words` words (long documents -> examples)."""
    current: list[str] = []
    count = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        current.append(line)
        count += len(line.split())
        if count >= words:
            yield " ".join(current)
            current, count = [], 0
    if count >= words // 4:
        yield " ".join(current)


def shared_subdir(name: str) -> Path | None:
    """../shared/data/<name> when present."""
    shared = shared_data_dir()
    path = shared / name if shared is not None else None
    return path if path is not None and path.is_dir() else None


def take(docs: Iterator[Doc], n: int | None) -> list[Doc]:
    return list(islice(docs, n)) if n is not None else list(docs)
