"""The kinds beyond `curate`, through the API as they land: a mixture of a finished job's corpus, then a
proxy trained on it and scored. Each test skips, saying so, when its kind is not in this build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_harness import mix_spec

from api.client import ApiClient, ApiError
from api.kinds import REGISTRY, KindEntry, KindUnavailable, get_kind, has_entry_point, is_available

needs_mix = pytest.mark.skipif(not is_available("mix"), reason="job kind mix is not available in this build")
needs_mixsearch = pytest.mark.skipif(
    not is_available("mixsearch"), reason="job kind mixsearch is not available in this build"
)
needs_train = pytest.mark.skipif(
    not is_available("train"), reason="job kind train is not available in this build"
)


@needs_mix
def test_mix_job_builds_a_mixture(client: ApiClient, mixture_job: dict[str, Any]) -> None:
    assert mixture_job["state"] == "succeeded", mixture_job["error"]
    assert mixture_job["result"]["domains"]["wiki"]["achieved_tokens"] >= 8000
    manifest = client.job_manifest(mixture_job["id"])
    assert (
        manifest["kind"] == "curate-mixture"
        and (Path(mixture_job["output"]) / manifest["files"][0]["path"]).is_file()
    )


@needs_mix
def test_mix_spec_errors_are_422_with_the_field(client: ApiClient, finished_job: dict[str, Any]) -> None:
    def error_of(spec: dict[str, Any]) -> str:
        with pytest.raises(ApiError) as error:
            client.submit_job("mix", spec)
        assert error.value.status == 422
        return str(error.value)

    assert error_of(mix_spec(finished_job["output"], budget=-1)).startswith("body.config.budget:")
    assert "unknown domain 'books'" in error_of(mix_spec(finished_job["output"], domains={"books": 1.0}))
    assert error_of(mix_spec("/etc")).startswith("body.config.corpora.0:")


@needs_mix
@needs_train
def test_train_job_scores_the_mixture(client: ApiClient, train_job: dict[str, Any]) -> None:
    assert train_job["state"] == "succeeded", train_job["error"]
    assert train_job["progress"]["done"] == train_job["progress"]["planned"] == 2
    score = client.call("GET", f"/v1/jobs/{train_job['id']}/score").json()
    assert score["score"] > 0 and set(score["domains"]) == {"wiki"}
    assert train_job["result"]["score"] == score["score"]


@needs_train
def test_train_config_errors_are_422(client: ApiClient, finished_job: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as both:
        client.submit_job("train", {"mixture": finished_job["output"], "steps": 2, "tokens": 100})
    assert both.value.status == 422 and "exactly one of `steps` or `tokens`" in str(both.value)
    with pytest.raises(ApiError) as preset:
        client.submit_job("train", {"mixture": finished_job["output"], "steps": 2, "preset": "huge"})
    assert str(preset.value).startswith("body.config.preset:")


@needs_mixsearch
def test_mixsearch_job_writes_a_spec_for_a_mix_job(client: ApiClient, mixsearch_job: dict[str, Any]) -> None:
    assert mixsearch_job["state"] == "succeeded", mixsearch_job["error"]
    assert mixsearch_job["result"]["strategy"] == "natural" and mixsearch_job["result"]["weights"] == {
        "wiki": 1.0
    }
    spec = Path(mixsearch_job["result"]["spec"])
    assert spec.parent == Path(mixsearch_job["output"]) and spec.is_file()
    report = client.job_manifest(mixsearch_job["id"])
    assert report["mixture"]["domains"] == {"wiki": 1.0}


def test_a_kind_whose_package_is_missing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """What every kind answered before its package landed: 422, never a stand-in."""
    entry = KindEntry(
        "future", "a kind of a package not in this build", "api.kinds.future_kind", ("nopkg.x:run",)
    )
    monkeypatch.setitem(REGISTRY, "future", entry)
    assert not is_available("future")
    with pytest.raises(KindUnavailable, match="^job kind future is not available in this build$"):
        get_kind("future")
    assert has_entry_point("curate.run:run_pipeline") and not has_entry_point("curate.run:no_such_entry")
