"""The dashboard in real headless Chromium (Debian's package, driven by selenium + chromedriver): the jobs
table with state and progress, a job's funnel and domain shares, proxy scores, all drawn as inline SVG."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import Server, curate_config, make_shards

from api.client import ApiClient
from api.kinds import is_available

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1400",
]  # fmt: skip


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium with a fresh profile."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
    )
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "Debian's chromium / chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def scored(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """A finished train job when this build has one (its result.json feeds the proxy-score plots)."""
    if not (is_available("mix") and is_available("train")):
        return None
    return request.getfixturevalue("train_job")


@pytest.fixture
def mixed(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """A finished mix job when this build has the mix kind (its shares panel and its progress)."""
    return request.getfixturevalue("mixture_job") if is_available("mix") else None


@pytest.fixture
def two_domains(client: ApiClient, data_root: Path, texts: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A finished job whose corpus holds Wikipedia pages and Python modules: shares other than 100%."""
    make_shards(data_root / "dash-wiki", texts["wiki"][:18], per_shard=9, bad=False)
    make_shards(data_root / "dash-code", texts["code"][:12], per_shard=6, bad=False)
    config = curate_config("dash-wiki/*.jsonl.gz")
    config["inputs"].append({"path": "dash-code/*.jsonl.gz", "name": "code", "domain": "code"})
    config["stages"].append({"langid": {"min_score": 0.0}})  # a score column: lang_score histograms
    job = client.wait_job(client.submit_job("curate", config)["id"], timeout=300)
    assert job["state"] == "succeeded", job["error"]
    return job


def expected_shares(domains: dict[str, int]) -> dict[str, tuple[str, str]]:
    """What the pie should say per domain: its legend line and its slice's tooltip, from the manifest."""
    total = sum(domains.values())
    return {
        name: (f"{name} {100 * n / total:.1f}% ({n:,})", f"{name}: {100 * n / total:.1f}%")
        for name, n in domains.items()
    }


SHARES_SCRIPT = """
const chart = document.querySelector('#domains svg');
if (!chart) return [[], []];
return [
  [...chart.querySelectorAll('text')].map(t => t.textContent),
  [...chart.querySelectorAll('[data-domain]')]
    .map(slice => [slice.dataset.domain, slice.querySelector('title').textContent]),
];
"""


def shown_shares(browser: Any) -> dict[str, tuple[str, str]]:
    """The legend line and the slice tooltip the dashboard draws for each domain, read in one script call
    (the page redraws every two seconds, so element handles would go stale between reads)."""
    lines, slices = browser.execute_script(SHARES_SCRIPT)
    legend = {line.split(" ")[0]: line for line in lines}
    tooltips = dict(slices)
    return {name: (legend.get(name, ""), tooltips.get(name, "")) for name in legend.keys() | tooltips.keys()}


def test_dashboard_renders_jobs_funnel_domains_and_scores(
    browser: Any,
    server: Server,
    finished_job: dict[str, Any],
    two_domains: dict[str, Any],
    scored: dict[str, Any] | None,
    mixed: dict[str, Any] | None,
    tmp_path: Path,
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # the page redraws every two seconds: every read or click is one step that is retried if its element
    # went stale in between
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))

    def row_of(job: str) -> str:
        return f'tr[data-job-id="{job}"]'

    def click(selector: str) -> None:
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, selector).click() is None)

    def text_of(element_id: str) -> str:
        return wait.until(lambda d: d.find_element(By.ID, element_id).text)

    browser.get(f"{server.url}/dashboard")  # without a token: the page asks for one
    wait.until(lambda d: d.find_element(By.ID, "token-form").is_displayed())
    assert "token" in text_of("status")
    job_id = finished_job["id"]
    browser.get(f"{server.url}/dashboard#token={server.token}&job={job_id}")

    def row_facts(d: Any) -> tuple[str, str, str]:
        row = d.find_element(By.CSS_SELECTOR, row_of(job_id))
        bar = row.find_element(By.CSS_SELECTOR, ".bar").get_attribute("aria-valuenow")
        return row.get_attribute("data-state"), bar, row.text

    state, bar, text = wait.until(row_facts)
    assert state == "succeeded" and bar == "100"
    assert "4/4" in text and "26 → 24" in text
    wait.until(lambda d: d.find_element(By.ID, "funnel-figure").is_displayed())
    bars = browser.find_elements(By.CSS_SELECTOR, "#funnel svg rect")
    assert len(bars) == 3  # read, normalize, tag
    drops = text_of("drops")
    assert "read: unreadable 1" in drops and "normalize: empty 1" in drops
    assert "s CPU" in text_of("funnel"), "the funnel shows CPU seconds per stage"
    wait.until(lambda d: d.find_element(By.ID, "samples-figure").is_displayed())
    reasons = {
        li.get_attribute("data-reason") for li in browser.find_elements(By.CSS_SELECTOR, "#reject-samples li")
    }
    assert reasons == {"unreadable", "empty"}
    assert (
        shown_shares(browser)
        == expected_shares(finished_job["result"]["domains"])
        == {"wiki": ("wiki 100.0% (24)", "wiki: 100.0%")}
    )
    assert "token" not in browser.current_url  # the secret leaves the address bar at once
    shot = tmp_path / "dashboard-job.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    click(row_of(two_domains["id"]))
    expected = expected_shares(two_domains["result"]["domains"])
    assert len(expected) >= 2, two_domains["result"]["domains"]
    wait.until(lambda d: set(shown_shares(d)) == set(expected))
    assert shown_shares(browser) == expected
    wait.until(lambda d: d.find_element(By.ID, "histograms-figure").is_displayed())
    lines = browser.execute_script(
        "return [...document.querySelectorAll('#histograms svg[data-score=\"lang_score\"] polyline')]"
        ".map(line => line.dataset.domain)"
    )
    assert sorted(lines) == sorted(expected), "one lang_score line per domain"
    assert browser.save_screenshot(str(tmp_path / "dashboard-histograms.png"))
    if mixed is not None:
        click(row_of(mixed["id"]))
        wait.until(lambda d: d.find_element(By.ID, "domains-caption").text.startswith("Token shares"))
        assert "progress –/–" not in text_of("detail-summary")
        assert "%" in text_of("domains") and "requested" in text_of("domains")
        assert browser.save_screenshot(str(tmp_path / "dashboard-mixture.png"))
    if scored is not None:
        wait.until(lambda d: d.find_element(By.ID, "scores-section").is_displayed())
        assert len(browser.find_elements(By.CSS_SELECTOR, "#scores svg rect")) >= 1
        click(row_of(scored["id"]))
        wait.until(lambda d: d.find_element(By.ID, "score-figure").is_displayed())
        assert "score" in text_of("score")
        assert browser.save_screenshot(str(tmp_path / "dashboard-score.png"))
