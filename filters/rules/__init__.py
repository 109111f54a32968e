"""The heuristic rules of the Gopher, C4 and FineWeb recipes, by concern:

- `settings`: each rule family's thresholds (pydantic) and the recipes' constants;
- `words`: spaCy-compatible English words over code points, as hashes (`TokenTable`), found by the
  compiled loops of `tokenizer` (numba), spaCy's affix rules in `affix_rules`, with the character
  classes of `charclasses`;
- `ngrams`: Gopher's n-gram repetition signals (compiled loops too);
- `badwords`: C4's bad-words check (word-bounded, or substrings for ja/th/zh);
- `languages`: what depends on a document's language (the `lang` column): unspaced scripts' words,
  stop-word and bad-word lists, and the grouping of a batch by language;
- `strings`: a chunk's lines as Arrow arrays, and predicates on them with Python's `str` semantics;
- `lines`: line and paragraph rules over every line of a chunk (duplicates, bullets, FineWeb's line
  statistics), and `c4lines`: C4's virtual line removal (lorem ipsum, curly brackets, sentences);
- `engine`: `RuleEngine`, which evaluates every rule on a batch of documents; `report`: what it says
  of them (`RuleReport`, the signal columns).
"""

from filters.rules.engine import RuleEngine
from filters.rules.report import SIGNAL_FIELDS, RuleReport
from filters.rules.settings import RuleSet

__all__ = ["SIGNAL_FIELDS", "RuleEngine", "RuleReport", "RuleSet"]
