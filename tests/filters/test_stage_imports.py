"""A worker or Ray actor that only scores imports only what scores: loading a built-in stage's module
pulls in none of the code that trains or evaluates its model (the recipes, the training corpora, the
metrics, the fastText trainer, the KenLM trainer and tool builder).

Each stage is loaded in a fresh interpreter, as a worker loads it: through its `curate.stages` entry
point, so a stage added to pyproject.toml is checked without editing this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from curate.stages.registry import ENTRY_POINT_GROUP

TRAINING_MODULES = (
    "filters.corpora",
    "filters.metrics",
    "filters.fasttext_training",
    "filters.kenlm_training",
    "filters.kenlm_build",
)
"""Modules only recipes use; any `filters.*_recipe` module is forbidden as well."""

STAGES = sorted((point.name, point.value) for point in entry_points(group=ENTRY_POINT_GROUP))

LOAD_AND_LIST = """
import json, sys
from curate.stages.registry import get_stage
get_stage(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def modules_after_loading(stage: str) -> list[str]:
    """Every module in sys.modules of a fresh interpreter after it has loaded `stage` by name."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_LIST, stage], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def training_imports(modules: list[str]) -> list[str]:
    return [
        m for m in modules if m in TRAINING_MODULES or (m.startswith("filters.") and m.endswith("_recipe"))
    ]


def test_every_built_in_model_stage_is_checked() -> None:
    names = {name for name, _ in STAGES}
    assert {"langid", "perplexity", "harmful_ppl", "toxicity", "quality"} <= names


@pytest.mark.parametrize(("stage", "target"), STAGES, ids=[name for name, _ in STAGES])
def test_loading_a_stage_imports_no_training_code(stage: str, target: str) -> None:
    modules = modules_after_loading(stage)
    assert target.split(":")[0] in modules  # the stage's own module was really imported
    assert training_imports(modules) == [], f"{stage} ({target}) imports training code"


def test_the_check_sees_a_recipe_import() -> None:
    """The same check on a recipe module finds what it imports, so an empty list above means something."""
    code = "import json, sys, filters.quality_recipe; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    found = training_imports(json.loads(done.stdout))
    assert {
        "filters.quality_recipe",
        "filters.corpora",
        "filters.metrics",
        "filters.fasttext_training",
    } <= set(found)
