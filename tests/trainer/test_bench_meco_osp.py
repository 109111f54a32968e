"""`curate bench meco` and `curate bench osp` end to end on a tiny setting: the commands' entry functions
on a small copy of their real-text corpus, a few steps, two paired seeds. The figures they print must all
be there and sane (finite, paired verdicts, shares and gaps consistent with the runs they summarise)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.meco import url_corpus_token_shards
from curate.textsources import shared_data_dir
from trainer.model import PRESETS

SITES = ("wikipedia.org", "gutenberg.org", "github.com")
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benches' url/site corpus cut small: 10 documents a domain (one held out), pages and books in
    pieces of ~600 characters, a 512-token vocabulary."""
    if shared_data_dir() is None:
        pytest.skip("the url corpus needs ../shared/data (Gutenberg books, crawled web pages)")
    folder = tmp_path_factory.mktemp("url-corpus") / "corpus"
    url_corpus_token_shards(folder, vocab_size=512, docs_per_domain=10, chars=600)
    return folder


def finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def test_bench_meco_prints_every_arm_site_score_and_generation_share(
    corpus_dir: Path, tmp_path: Path
) -> None:
    from bench.meco import bench_meco

    out = tmp_path / "meco"
    out.mkdir()
    (out / "corpus").symlink_to(corpus_dir)  # the bench's corpus lives in its --out: use the small one
    # 4 steps of 4 x 64 tokens: 3 with the site prefix, 1 cooldown; 2 short samples per site
    figures = bench_meco(
        out, tokens=4 * 4 * 64, seeds=SEEDS, cooldown=0.25, batch_size=4, seq_len=64, samples_per_site=2,
        sample_tokens=8,
    )  # fmt: skip
    runs = figures["runs"]
    steps = {arm: [r["steps"] for r in rows] for arm, rows in runs.items()}
    assert steps == {"plain": [4, 4], "meco": [4, 4], "meco_two_thirds": [3, 3]}
    assert [r["seed"] for arm in runs.values() for r in arm] == [0, 1] * 3
    assert runs["plain"][0]["metadata_conditioning"] is None
    assert runs["meco"][0]["metadata_conditioning"]["conditioned_steps"] == 3  # the last quarter plain
    assert all(finite(figures["bpb"][arm]["mean"]) and 0 < figures["bpb"][arm]["mean"] < 20 for arm in runs)
    for key in ("meco_vs_plain", "meco_two_thirds_vs_plain"):
        assert figures[key]["pairs"] == 2 and figures[key]["verdict"]
    for arm in ("plain", "meco"):
        for run in runs[arm]:
            assert set(run["sites"]) == set(SITES)
            for site, scores in run["sites"].items():
                assert all(finite(scores[k]) for k in ("plain", "right_site", "wrong_site"))
                assert scores["wrong_site_used"] in set(SITES) - {site}
            drawn = [s for samples in run["generations"]["samples"].values() for s in samples]
            assert len(drawn) == 2 * len(SITES) and {s["closest_site"] for s in drawn} <= set(SITES)
            own = sum(
                s["closest_site"] == site for site, ss in run["generations"]["samples"].items() for s in ss
            )
            assert run["generations"]["own_site_share"] == pytest.approx(own / len(drawn))
        share, se = figures["generation_own_site_share"][arm]
        assert 0.0 <= share <= 1.0 and se >= 0
        for site in SITES:
            assert figures["site_conditioning"][f"{arm}:{site}"]["right_vs_wrong"]["pairs"] == 2
    assert runs["meco_two_thirds"][0]["sites"] is None  # site figures compare equal tokens only


def test_bench_osp_prints_post_training_and_nvfp4_training_figures(corpus_dir: Path, tmp_path: Path) -> None:
    from bench.osp import RECIPES, SUMMARISED, bench_osp

    out = tmp_path / "osp"
    settings = {"tokens": 2 * 8 * 32, "batch_size": 8, "seq_len": 32, "corpus_dir": corpus_dir}  # 2 steps
    figures = bench_osp(out, seeds=SEEDS, **settings)  # type: ignore[arg-type]
    assert figures["steps"] == 2 and figures["train_precision"] == ["bf16", "nvfp4"]
    blocks = PRESETS["tiny"]["n_layers"]
    for recipe in RECIPES:
        rows = figures["runs"][recipe]
        assert [r["seed"] for r in rows] == [0, 1]
        for row in rows:
            assert len(row["kurtosis_per_block"]) == len(row["kurtosis_per_block_nvfp4_trained"]) == blocks
            assert all(finite(k) and k >= -2 for k in row["kurtosis_per_block"])  # excess kurtosis >= -2
            assert row["nvfp4_gap"] == pytest.approx(row["eval_loss_nvfp4"] - row["eval_loss_bf16"])
            assert row["nvfp4_training_gap"] == pytest.approx(
                row["eval_loss_nvfp4_trained"] - row["eval_loss_bf16"]
            )
            assert all(abs(row[k]) < 1 for k in ("nvfp4_gap", "nvfp4_training_gap"))
            assert all(
                0 < row[k] < 12 for k in ("eval_loss_bf16", "eval_loss_nvfp4", "eval_loss_nvfp4_trained")
            )
        assert all(finite(figures["summary"][recipe][key]["mean"]) for key in SUMMARISED)
    for key in SUMMARISED:
        assert figures["comparisons"][key]["pairs"] == 2 and figures["comparisons"][key]["verdict"]
    trained = json.loads((out / "runs" / "osp-nvfp4-s1" / "config.json").read_text())
    assert trained["precision"]["name"] == "nvfp4" and trained["precision"]["high_precision_last"] == 0
    assert trained["recipe"] == "osp" and trained["optimizer"] == "muon"
    again = bench_osp(out, seeds=(1,), resume=True, **settings)  # type: ignore[arg-type]
    for recipe in RECIPES:  # finished runs are only scored again, to the same figures
        rerun, first = again["runs"][recipe][0], figures["runs"][recipe][1]
        assert {k: v for k, v in rerun.items() if not k.startswith("cpu_s")} == {
            k: v for k, v in first.items() if not k.startswith("cpu_s")
        }
