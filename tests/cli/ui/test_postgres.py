"""The same pages over PostgreSQL with the blobs in the database: the registry filled as for SQLite (see
tests/helpers/ui.py), read over HTTP from a `t2reg ui --db URL` subprocess."""

from __future__ import annotations

import uuid

import httpx
import pytest

from t2reg.registry import Registry
from t2reg.registry.blobs_db import DatabaseBlobStore
from tests.helpers.ui import XSS, fill_registry

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def filled(tmp_path_factory, postgres):
    """This module's registry: an empty PostgreSQL database, initialised with ``--blobs db``."""
    url = postgres.create_database(f"ui_{uuid.uuid4().hex[:12]}")
    return fill_registry(tmp_path_factory.mktemp("ui-pg"), url)


def test_the_blobs_are_in_the_database(filled):
    assert not (filled.home / "blobs").exists()
    with Registry(filled.settings()) as registry:
        assert isinstance(registry.blobs, DatabaseBlobStore)


def test_the_index_is_filtered_sorted_and_scored_by_postgresql(server, filled):
    index = httpx.get(f"{server.url}/api/experts").json()
    assert index["total"] == 7 and [r["ref"] for r in index["rows"]][:2] == ["arc-adapted:1", "arc-smol:1"]
    by_score = httpx.get(f"{server.url}/api/experts", params={"sort": "score"}).json()
    assert [r["ref"] for r in by_score["rows"]][:2] == ["gsm-smol:1", filled.native]
    assert [r["score"] for r in by_score["rows"]][2:] == [None] * 5
    transfers = httpx.get(f"{server.url}/api/experts", params={"where": "source in (transferred,transferred-shuffled)"})
    assert sorted(r["ref"] for r in transfers.json()["rows"]) == sorted([filled.ordered, filled.shuffled])
    assert httpx.get(f"{server.url}/api/experts", params={"where": "colour=red"}).status_code == 400


def test_a_version_its_file_lineage_and_the_xss_expert(server, filled):
    data = httpx.get(f"{server.url}/api/experts/arc-smol/1").json()
    assert {g["protocol"] for g in data["protocols"]} == {filled.protocol, "reported:arc-easy"}
    with Registry(filled.settings()) as registry:
        expected = registry.expert_bytes(filled.ordered)
    assert httpx.get(f"{server.url}/experts/arc-smol--to-gemma3-270m/1/file").content == expected
    lineage = httpx.get(f"{server.url}/api/experts/arc-adapted/1/lineage").json()
    assert {(e["parent"], e["weight"]) for e in lineage["edges"] if e["relation"] == "mixture_component"} == \
        {(filled.native, 0.7), ("gsm-smol:1", 0.3)}
    html = httpx.get(f"{server.url}/experts/xss/1").text
    assert "&lt;script&gt;" in html and XSS not in html


def test_best_compare_models_and_jobs(server, filled):
    best = httpx.get(f"{server.url}/api/best", params={"task": "arc-easy"}).json()
    assert best["protocol"] == filled.protocol and [r["ref"] for r in best["rows"]] == [filled.native]
    compared = httpx.get(f"{server.url}/api/compare",
                         params={"a": filled.native, "b": filled.base, "protocol": filled.protocol}).json()
    paired = compared["paired"]
    assert (paired["n"], paired["accuracy_x"], paired["accuracy_y"], paired["only_x"], paired["only_y"]) == \
        (4, 0.75, 0.5, 2, 1)
    assert [d["id"] for d in compared["disagreements"]] == list(filled.questions[:3])
    missing = httpx.get(f"{server.url}/api/compare", params={"a": filled.native, "b": "arc-smol-b:1",
                                                             "protocol": filled.protocol})
    assert missing.status_code == 404
    models = {row["model"]["name"]: row["spectra"] for row in httpx.get(f"{server.url}/api/models").json()["models"]}
    assert models[filled.tiny]["groups"] == ["mlp"] and models["google/gemma-3-270m"] is None
    events = httpx.get(f"{server.url}/api/jobs/{filled.finished_job}/events", params={"after": 2}).json()
    assert [e["seq"] for e in events["events"]] == [3, 4] and events["status"] == "succeeded"


def test_in_the_browser_a_version_its_lineage_and_the_xss_expert(server, browser, filled, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server.url}/experts/arc-adapted/1")
    assert browser.find_element(By.ID, "title").text == filled.mixture
    assert len(browser.find_elements(By.CSS_SELECTOR, "#profiles svg polyline")) == 3  # z read from a database blob
    browser.find_element(By.ID, "lineage-link").click()
    WebDriverWait(browser, 15).until(lambda _driver: browser.current_url.endswith("/lineage"))
    nodes = {n.get_attribute("data-key") for n in browser.find_elements(By.CSS_SELECTOR, "#graph a.node")}
    assert nodes == {filled.mixture, filled.native, "gsm-smol:1", str(filled.finished_job)}
    browser.save_screenshot(str(tmp_path / "lineage-postgres.png"))
    browser.get(f"{server.url}/experts/xss/1")
    assert XSS in browser.find_element(By.ID, "card").text
    assert browser.execute_script("return window.__xss") is None
