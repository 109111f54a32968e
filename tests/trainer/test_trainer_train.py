"""The training loop: every recipe learns, metrics are complete, and a stopped or killed run resumes
onto exactly the loss curve of an uninterrupted one."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from curate.errors import ConfigError
from trainer.optim import lr_factor
from trainer.train import CHECKPOINT, METRIC_FIELDS, METRICS, load_checkpoint, parse_train_config, train

SMALL_MODEL = {"d_model": 64, "n_layers": 3, "n_heads": 2}


def _config(token_dir: Path, out: Path, **overrides):
    fields = {
        "token_dir": token_dir,
        "out_dir": out,
        "model": SMALL_MODEL,
        "batch_size": 8,
        "seq_len": 32,
        "lr": 1e-2,
        "steps": 30,
        "threads": 1,
        "progress": False,
        "precision": {"name": "fp32", "high_precision_last": 1},
    }
    return parse_train_config(**{**fields, **overrides})


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / METRICS).read_text().splitlines()]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp8", "nvfp4"])
def test_every_recipe_learns_and_logs_all_fields(precision, token_dir, tmp_path):
    cfg = _config(token_dir, tmp_path, precision={"name": precision, "high_precision_last": 1})
    summary = train(cfg)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 31)) and summary["finished"]
    assert all(set(METRIC_FIELDS) <= set(r) for r in rows)
    assert rows[-1]["tokens"] == 30 * 8 * 32
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    first, last = sum(r["loss"] for r in rows[:5]) / 5, sum(r["loss"] for r in rows[-5:]) / 5
    assert last < first - 0.3 and rows[-1]["loss"] < math.log(512) - 0.6, (first, last)
    assert rows[0]["lr"] < rows[2]["lr"] and rows[-1]["lr"] < rows[10]["lr"]  # warmup, then decay


def test_nvfp4_run_quantises_all_but_the_last_block(token_dir, tmp_path):
    from trainer.precision import NVFP4Linear
    from trainer.train import Run

    run = Run(_config(token_dir, tmp_path, precision={"name": "nvfp4", "high_precision_last": 1}))
    kinds = [
        {type(m).__name__ for m in b.modules() if isinstance(m, torch.nn.Linear)} for b in run.model.blocks
    ]
    assert kinds == [{"NVFP4Linear"}, {"NVFP4Linear"}, {"Linear"}]
    assert sum(isinstance(m, NVFP4Linear) for m in run.model.modules()) == 8


@pytest.mark.parametrize("precision", ["fp32", "nvfp4"])
def test_stop_and_resume_gives_the_identical_loss_curve(precision, token_dir, tmp_path):
    common = {"steps": 12, "checkpoint_every": 4, "precision": {"name": precision, "high_precision_last": 1}}
    train(_config(token_dir, tmp_path / "straight", **common))
    train(_config(token_dir, tmp_path / "resumed", stop_after=6, **common))
    assert len(_metrics(tmp_path / "resumed")) == 6
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT)["step"] == 6  # a stop checkpoints
    train(_config(token_dir, tmp_path / "resumed", **common))
    straight, resumed = _metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed")
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]
    assert [r["grad_norm"] for r in resumed] == [r["grad_norm"] for r in straight]
    a = load_checkpoint(tmp_path / "straight" / CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "resumed" / CHECKPOINT)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigkilled_run_resumes_to_the_same_curve(token_dir, tmp_path):
    """A real kill -9 mid-run: metrics written after the last checkpoint are dropped and redone."""
    common = {"steps": 400, "checkpoint_every": 3, "stop_after": 10}
    out = tmp_path / "killed"
    fields = {
        "token_dir": str(token_dir),
        "out_dir": str(out),
        "model": SMALL_MODEL,
        "batch_size": 8,
        "seq_len": 32,
        "lr": 1e-2,
        "threads": 1,
        "progress": False,
        "steps": 400,
        "checkpoint_every": 3,
        "precision": {"name": "fp32", "high_precision_last": 1},
    }
    script = f"from trainer.train import parse_train_config, train; train(parse_train_config(**{fields!r}))"
    child = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = (out / METRICS).read_text().splitlines() if (out / METRICS).exists() else []
            if len(rows) >= 4 and len(rows) % 3:  # past a checkpoint, between two checkpoints
                break
            assert child.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    killed_at = len((out / METRICS).read_text().splitlines())
    checkpoint_step = load_checkpoint(out / CHECKPOINT)["step"]
    assert checkpoint_step % 3 == 0 and 3 <= checkpoint_step <= killed_at
    train(_config(token_dir, out, **common))
    train(_config(token_dir, tmp_path / "straight", **common))
    resumed, straight = _metrics(out), _metrics(tmp_path / "straight")
    assert [r["step"] for r in resumed] == list(range(1, 11)), killed_at
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]


def test_resuming_with_a_different_config_is_a_one_line_error(token_dir, tmp_path):
    train(_config(token_dir, tmp_path, steps=2))
    with pytest.raises(ConfigError, match=r"different config \(lr differ\)"):
        train(_config(token_dir, tmp_path, steps=2, lr=1e-3))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"precision": {"name": "fp4"}}, "precision.name"),
        ({"model": {"widht": 3}}, "unknown model field"),
        ({"schedule": "linear"}, "schedule"),
        ({"model": {"n_heads": 3}}, "model.*not divisible by n_heads"),
        ({"seq_len": 64, "model": {"max_seq_len": 32}}, "exceeds the model's max_seq_len"),
    ],
)
def test_bad_train_config_names_the_field(token_dir, tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        _config(token_dir, tmp_path, **fields)


def test_schedules_warm_up_then_cosine_or_wsd():
    cosine = [lr_factor(s, 100, 10, "cosine", 0.1, 0.2) for s in range(100)]
    assert cosine[0] == pytest.approx(0.1) and cosine[9] == 1.0
    assert all(a >= b for a, b in zip(cosine[9:], cosine[10:], strict=False)) and cosine[-1] == pytest.approx(
        0.1
    )
    wsd = [lr_factor(s, 100, 10, "wsd", 0.0, 0.2) for s in range(100)]
    assert set(wsd[9:80]) == {1.0} and wsd[80] < 1.0 and wsd[-1] == 0.0


def test_muon_option_trains(token_dir, tmp_path):
    train(_config(token_dir, tmp_path, optimizer="muon", schedule="wsd", steps=20))
    rows = _metrics(tmp_path)
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5
