"""The README's custom stage, its entry point and its Python run, exactly as written there, really run.

The stage's package is made discoverable the way pip would install it (a `.dist-info` folder with
`entry_points.txt` on the path), and the run uses two worker processes, so the stage is found by entry
point in processes that never saw the README's code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from curate.textsources import news_texts
from tests.conftest import REPO
from tests.core.helpers import read_parts

SHOUTED = 7


def readme_block(first_line: str) -> str:
    """The fenced code block of README.md whose first line starts with `first_line`."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.DOTALL)
    matches = [block for block in blocks if block.startswith(first_line)]
    assert len(matches) == 1, f"README.md should hold one block starting with {first_line!r}"
    return matches[0]


def install_package(site: Path) -> None:
    """my_stages as pip would leave it: the module, and its entry points in a dist-info folder."""
    (site / "my_stages").mkdir(parents=True)
    (site / "my_stages" / "__init__.py").write_text("")
    (site / "my_stages" / "shouting.py").write_text(readme_block("# my_stages/shouting.py"))
    entry_points = tomllib.loads(readme_block("# pyproject.toml of the package"))["project"]["entry-points"]
    dist_info = site / "my_stages-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-stages\nVersion: 0.1\n")
    sections = [
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items())
        for group, points in entry_points.items()
    ]
    (dist_info / "entry_points.txt").write_text("\n".join(sections))


def write_shards(folder: Path) -> list[str]:
    """Real news articles in two shards (so two worker processes start), a few of them shouted
    (upper-cased); returns the ids of the shouted ones."""
    texts = [text for text in news_texts() if len(text) > 500][:40]
    shouted = [f"news-{index}" for index in range(0, 5 * SHOUTED, 5)]
    folder.mkdir(parents=True)
    for half in (0, 1):
        with open(folder / f"news-{half}.jsonl", "w", encoding="utf-8") as handle:
            for index in range(half, len(texts), 2):
                doc_id = f"news-{index}"
                text = texts[index].upper() if doc_id in shouted else texts[index]
                handle.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    return shouted


def test_readme_custom_stage_runs_from_python_with_two_workers(tmp_path: Path) -> None:
    site, work = tmp_path / "site", tmp_path / "work"
    install_package(site)
    shouted = write_shards(work / "shards")
    (work / "run.py").write_text(readme_block("# run.py"))
    result = subprocess.run(
        [sys.executable, "run.py"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{site}:{REPO}", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((work / "out" / "manifest.json").read_text())
    assert manifest["totals"]["rejected"] == len(shouted) == SHOUTED
    rejects = read_parts(work / "out" / "rejects")
    assert sorted(rejects.column("id").to_pylist()) == sorted(shouted)
    assert set(rejects.column("reject_reason").to_pylist()) == {"shouting:upper_frac"}
    assert set(rejects.column("reject_stage").to_pylist()) == {"shouting"}
    kept = read_parts(work / "out" / "corpus")
    assert kept.num_rows == 40 - SHOUTED and max(kept.column("upper_frac").to_pylist()) < 0.6
