"""How the `langid` stage's model (fastText's lid.176, not trained here) is evaluated: accuracy on the
Universal Declaration of Human Rights (`curate models eval langid`).

`evaluate_udhr()` measures accuracy on the UDHR in the ~120 languages of UDHR2 that lid.176 knows (see
`UDHR_TO_LID`), per paragraph line and per whole document, with the stage's own one-line preparation and
batched prediction.
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from filters.langid import lid_labels, one_line, predict_languages

UDHR_TO_LID: dict[str, str] = {
    "afr": "af", "als": "sq", "amh": "am", "arb": "ar", "ast": "ast", "azj_cyrl": "az", "azj_latn": "az",
    "bcl": "bcl", "bel": "be", "ben": "bn", "bho": "bh", "bod": "bo", "bos_cyrl": "bs", "bos_latn": "bs",
    "bre": "br", "bul": "bg", "cat": "ca", "ceb": "ceb", "ces": "cs", "ckb": "ckb", "cmn_hans": "zh",
    "cmn_hant": "zh", "cos": "co", "cym": "cy", "dan": "da", "deu": "de", "deu_1901": "de", "div": "dv",
    "ell_monotonic": "el", "ell_polytonic": "el", "eml": "eml", "eng": "en", "epo": "eo", "est": "et",
    "eus": "eu", "fin": "fi", "fra": "fr", "fri": "fy", "gla": "gd", "gle": "ga", "glg": "gl", "gug": "gn",
    "guj": "gu", "hat_kreyol": "ht", "hat_popular": "ht", "heb": "he", "hin": "hi", "hrv": "hr",
    "hsb": "hsb", "hun": "hu", "hye": "hy", "ido": "io", "ilo": "ilo", "ina": "ia", "ind": "id", "isl": "is",
    "ita": "it", "jav": "jv", "jpn": "ja", "kan": "kn", "kat": "ka", "kaz": "kk", "khk": "mn",
    "khk_mong": "mn", "khm": "km", "kir": "ky", "kor": "ko", "lao": "lo", "lat": "la", "lat_1": "la",
    "lav": "lv", "lit": "lt", "lnc": "oc", "ltz": "lb", "mai": "mai", "mal": "ml", "mar": "mr", "min": "min",
    "mkd": "mk", "mlt": "mt", "mly_arab": "ms", "mly_latn": "ms", "mya": "my", "nds": "nds", "nep": "ne",
    "nhn": "nah", "nld": "nl", "nno": "nn", "nob": "no", "oss": "os", "pam": "pam", "pan": "pa",
    "pbu": "ps", "pes_1": "fa", "pes_2": "fa", "plt": "mg", "pnb": "pnb", "pol": "pl", "por_BR": "pt",
    "por_PT": "pt", "prv": "oc", "qud": "qu", "qug": "qu", "quy": "qu", "quz": "qu", "qva": "qu",
    "qvc": "qu", "qvh": "qu", "qvm": "qu", "qvn": "qu", "qwh": "qu", "qxa": "qu", "qxn": "qu", "qxu": "qu",
    "roh": "rm", "ron": "ro", "ron_1953": "ro", "ron_1993": "ro", "rus": "ru", "sah": "sah", "san": "sa",
    "sco": "sco", "slk": "sk", "slv": "sl", "som": "so", "spa": "es", "src": "sc", "srp_cyrl": "sr",
    "srp_latn": "sr", "sun": "su", "swe": "sv", "swh": "sw", "tam": "ta", "tat": "tt", "tgk": "tg",
    "tgl": "tl", "tgl_tglg": "tl", "tha": "th", "tuk_cyrl": "tk", "tuk_latn": "tk", "tur": "tr",
    "tyv": "tyv", "uig_arab": "ug", "uig_latn": "ug", "ukr": "uk", "urd": "ur", "uzn_cyrl": "uz",
    "uzn_latn": "uz", "vec": "vec", "vep": "vep", "vie": "vi", "war": "war", "wln": "wa", "ydd": "yi",
    "yor": "yo",
}  # fmt: skip
"""UDHR2 file stems (ISO 639-3, with a script or variety suffix) -> lid.176 label. Macrolanguages map to
their ISO 639-1 code (the Quechua varieties to `qu`, Tosk Albanian `als` to `sq`, Halh Mongolian to `mn`);
languages lid.176 lacks (about 260 of the 388 files) are left out of the evaluation."""

SERBO_CROATIAN = {"hr", "bs", "sr"}
"""lid.176 also has `sh` (Serbo-Croatian): the lenient figure counts `sh` as right for these three."""


def udhr_paragraphs(zip_path: Path, min_chars: int = 40) -> dict[str, list[str]]:
    """Paragraph lines of each mapped UDHR file (headings like `Article 3` are shorter than min_chars)."""
    paragraphs: dict[str, list[str]] = {}
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            stem = Path(info.filename).stem
            if info.is_dir() or stem not in UDHR_TO_LID:
                continue
            text = archive.read(info).decode("utf-8", errors="replace")
            lines = [line.strip() for line in text.splitlines()]
            paragraphs[stem] = [line for line in lines if len(line) >= min_chars]
    return paragraphs


def evaluate_udhr(
    zip_path: Path, min_chars: int = 40, min_score: float = 0.65, top: int = 50
) -> dict[str, Any]:
    """Accuracy of lid.176 on UDHR2: per paragraph line (micro and macro over languages) and per whole
    document, strict and with `sh` accepted for hr/bs/sr, plus how many lines clear `min_score`. The
    `top_*` figures keep the languages among lid.176's first `top` labels (its labels are ordered by
    training-data size), which is the regime of web-scale pretraining corpora."""
    files = udhr_paragraphs(zip_path, min_chars)
    line_hits: dict[str, list[bool]] = defaultdict(list)
    lenient_hits: list[bool] = []
    confident: list[bool] = []
    doc_hits: dict[str, bool] = {}
    misses: dict[str, str] = {}
    for stem, lines in sorted(files.items()):
        gold = UDHR_TO_LID[stem]
        langs, scores = predict_languages(one_line(pa.array(lines, pa.large_string())))
        line_hits[gold].extend(lang == gold for lang in langs)
        lenient_hits.extend(_lenient(lang, gold) for lang in langs)
        confident.extend(bool(s >= min_score) for s in scores)
        doc_lang = predict_languages([" ".join(lines)])[0][0]
        doc_hits[stem] = doc_lang == gold
        if doc_lang != gold:
            misses[stem] = doc_lang
    all_hits = [hit for hits in line_hits.values() for hit in hits]
    major = set(lid_labels()[:top])
    top_hits = [hit for lang, hits in line_hits.items() if lang in major for hit in hits]
    top_docs = [hit for stem, hit in doc_hits.items() if UDHR_TO_LID[stem] in major]
    return {
        "files": len(files),
        "languages": len(line_hits),
        "lines": len(all_hits),
        "line_accuracy": round(float(np.mean(all_hits)), 4),
        "line_accuracy_lenient_sh": round(float(np.mean(lenient_hits)), 4),
        "line_macro_accuracy": round(float(np.mean([np.mean(h) for h in line_hits.values()])), 4),
        "line_confident_fraction": round(float(np.mean(confident)), 4),
        "document_accuracy": round(float(np.mean(list(doc_hits.values()))), 4),
        f"top{top}_languages": len([lang for lang in line_hits if lang in major]),
        f"top{top}_line_accuracy": round(float(np.mean(top_hits)), 4),
        f"top{top}_document_accuracy": round(float(np.mean(top_docs)), 4),
        "document_misses": misses,
        "min_chars": min_chars,
        "min_score": min_score,
    }


def _lenient(predicted: str, gold: str) -> bool:
    return predicted == gold or (predicted == "sh" and gold in SERBO_CROATIAN)
