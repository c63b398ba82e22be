"""`t2reg ui` as a person and a program see it: headless Chromium and plain HTTP against a real server subprocess
over a registry filled through the library and the CLI (see tests/helpers/ui.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest

from t2reg.registry import Registry
from tests.helpers.serving import t2reg as run_cli
from tests.helpers.ui import CODE_ROOT, XSS, search_event

pytestmark = pytest.mark.timeout(300)
WAIT = 15  # seconds a browser waits for what the page should come to show


def _wait(browser, condition):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT).until(lambda _driver: condition())


def _rows(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-ref") for row in browser.find_elements(By.CSS_SELECTOR, "#experts tbody tr")]


# -- in the browser --------------------------------------------------------------------------------------------


def test_filtering_the_experts_table_by_typing(server, browser, filled, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server.url + "/")
    assert len(_rows(browser)) == 7
    box = browser.find_element(By.ID, "where")
    box.send_keys("source in (transferred,transferred-shuffled)", Keys.ENTER)
    _wait(browser, lambda: len(_rows(browser)) == 2)
    assert sorted(_rows(browser)) == sorted([filled.ordered, filled.shuffled])
    assert "2 experts" in browser.find_element(By.ID, "count").text
    browser.save_screenshot(str(tmp_path / "experts-filtered.png"))
    box = browser.find_element(By.ID, "where")
    box.clear()
    box.send_keys("model=nowhere", Keys.ENTER)
    _wait(browser, lambda: browser.find_elements(By.ID, "error"))
    assert "nowhere" in browser.find_element(By.ID, "error").text and _rows(browser) == []


def test_sorting_by_score_puts_the_scored_first(server, browser, filled):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.LINK_TEXT, "accuracy").click()
    _wait(browser, lambda: "sort=score" in browser.current_url)
    rows = _rows(browser)
    # arc-easy's default protocol is the measured one: only arc-smol:1 has a score under it; gsm8k has a reported one
    assert rows[0] == "gsm-smol:1" and rows[1] == filled.native


def test_a_version_its_lineage_and_an_edge_followed(server, browser, filled, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/experts/arc-adapted/1")
    assert browser.find_element(By.ID, "title").text == filled.mixture
    assert f"job={filled.finished_job}" in browser.find_element(By.ID, "tags").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#profiles svg polyline")) == 3
    browser.save_screenshot(str(tmp_path / "version.png"))
    browser.find_element(By.ID, "lineage-link").click()
    _wait(browser, lambda: browser.current_url.endswith("/lineage"))
    nodes = {n.get_attribute("data-key"): n for n in browser.find_elements(By.CSS_SELECTOR, "#graph a.node")}
    assert set(nodes) == {filled.mixture, filled.native, "gsm-smol:1", str(filled.finished_job)}
    assert "α=0.7" in browser.find_element(By.ID, "graph").text
    browser.save_screenshot(str(tmp_path / "lineage.png"))
    nodes[filled.native].click()  # follow the mixture edge up to a component
    _wait(browser, lambda: browser.current_url.endswith("/experts/arc-smol/1"))
    assert browser.find_element(By.ID, "title").text == filled.native
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.protocol")) == 2
    browser.find_element(By.ID, "lineage-link").click()
    _wait(browser, lambda: browser.current_url.endswith("/lineage"))
    placed = {n.get_attribute("data-key"): n.find_element(By.TAG_NAME, "rect").get_attribute("x")
              for n in browser.find_elements(By.CSS_SELECTOR, "#graph a.node")}
    # the ordered transfer, its shuffled control and the mixture: one generation, side by side in one column
    assert placed[filled.ordered] == placed[filled.shuffled] == placed[filled.mixture] != placed[filled.native]


def test_a_running_jobs_plot_gains_a_point_without_a_reload(server, browser, filled, tmp_path):
    from selenium.webdriver.common.by import By

    def points() -> int:
        return len(browser.find_elements(By.CSS_SELECTOR, "#charts svg:first-of-type circle.point.s0"))

    browser.get(f"{server.url}/jobs/{filled.running_job}")
    assert points() == filled.steps and browser.find_element(By.ID, "status").text == "running"
    browser.execute_script("window.__same_page = true")
    with Registry(filled.settings()) as registry:
        registry.jobs.checkpoint(filled.running_claim, {"components": ["arc-smol:1", "gsm-smol:1"]},
                                 search_event(filled.steps))
    _wait(browser, lambda: points() == filled.steps + 1)
    assert browser.find_element(By.ID, "steps").text.startswith(str(filled.steps + 1))
    assert browser.execute_script("return window.__same_page") is True
    browser.save_screenshot(str(tmp_path / "job.png"))


def test_the_queue_shows_kind_status_worker_and_progress(server, browser, filled):
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/jobs")
    row = browser.find_element(By.CSS_SELECTOR, f"#jobs tr[data-job='{filled.finished_job}']")
    assert row.text.split()[:4] == [str(filled.finished_job), "adapt", "succeeded", "test-worker"]
    assert "4 / 4 steps" in row.text


def test_script_in_a_description_tag_and_card_stays_text(server, browser, filled):
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/experts/xss/1")
    assert XSS in browser.find_element(By.ID, "card").text
    assert XSS in browser.find_element(By.ID, "tags").text
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    assert browser.execute_script("return window.__xss") is None


# -- over HTTP -------------------------------------------------------------------------------------------------


def test_the_xss_expert_is_escaped_in_the_html(server):
    html = httpx.get(f"{server.url}/experts/xss/1").text
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in html
    assert XSS not in html


def test_unknown_things_are_404_pages_and_json(server):
    for path in ("/experts/nope/1", "/experts/arc-smol/99", "/experts/arc-smol/x", "/jobs/999", "/jobs/x",
                 "/experts/nope/1/lineage", "/experts/nope/1/file", "/nowhere"):
        response = httpx.get(server.url + path)
        assert response.status_code == 404, path
        assert "<h1>404</h1>" in response.text, path
    for path in ("/api/experts/nope/1", "/api/jobs/999", "/api/jobs/999/events", "/api/experts/arc-smol/9/lineage"):
        response = httpx.get(server.url + path)
        assert response.status_code == 404 and response.json()["error"], path
    assert "no expert named 'nope'" in httpx.get(server.url + "/api/experts/nope/1").json()["error"]


def test_a_bad_filter_is_its_one_line_error_and_400(server):
    page = httpx.get(server.url + "/", params={"where": "colour=red"})
    assert page.status_code == 400 and "unknown filter key &#39;colour&#39;" in page.text
    data = httpx.get(server.url + "/api/experts", params={"where": "colour=red"})
    assert data.status_code == 400 and data.json() == {"error": "unknown filter key 'colour'; use model, task, "
                                                                "source, name or tag.KEY"}


def test_the_download_is_what_t2reg_download_writes(server, filled, tmp_path):
    run_cli(filled.home, *filled.options, "download", filled.ordered, "--out", str(tmp_path / "cli.safetensors"))
    response = httpx.get(f"{server.url}/experts/arc-smol--to-gemma3-270m/1/file")
    assert response.status_code == 200 and response.content == (tmp_path / "cli.safetensors").read_bytes()
    assert "attachment" in response.headers["content-disposition"]


def test_json_and_html_show_the_same_scores(server, filled):
    data = httpx.get(f"{server.url}/api/experts/arc-smol/1").json()
    html = httpx.get(f"{server.url}/experts/arc-smol/1").text
    assert {g["protocol"] for g in data["protocols"]} == {filled.protocol, "reported:arc-easy"}
    for group in data["protocols"]:
        section = html.split(f'data-protocol="{group["protocol"]}"')[1].split("</section>")[0]
        shown = re.findall(r'class="num value">([^<]+)<', section)
        assert shown == [f"{s['value']:.4g}" for s in group["scores"]]
    measured = next(g for g in data["protocols"] if g["protocol"] == filled.protocol)["scores"][0]
    assert measured["baseline"] == {"answer": "A", "accuracy": 0.5} and measured["spread"] == {"A": 3, "B": 1}
    index = httpx.get(f"{server.url}/api/experts").json()
    row = next(r for r in index["rows"] if r["ref"] == filled.native)
    cell = httpx.get(server.url + "/").text.split(f'data-ref="{filled.native}"')[1].split("</tr>")[0]
    assert row["score"]["value"] == 0.75 and row["score"]["n"] == 4 and 'score">0.75<' in cell


def test_lineage_json_names_every_edge(server, filled):
    data = httpx.get(f"{server.url}/api/experts/arc-smol/1/lineage").json()
    edges = {(e["parent"], e["child"], e["relation"], e["weight"]) for e in data["edges"]}
    assert edges == {(filled.native, filled.ordered, "transferred_from", None),
                     (filled.native, filled.shuffled, "transferred_from", None),
                     (filled.native, filled.mixture, "mixture_component", 0.7)}
    mixture = httpx.get(f"{server.url}/api/experts/arc-adapted/1/lineage").json()
    assert (str(filled.finished_job), filled.mixture, None) in {(e["parent"], e["child"], e["relation"])
                                                               for e in mixture["edges"]}


def test_events_after_a_step_are_only_the_newer_ones(server, filled):
    data = httpx.get(f"{server.url}/api/jobs/{filled.finished_job}/events", params={"after": 2}).json()
    assert [e["seq"] for e in data["events"]] == [3, 4] and data["last_seq"] == 4 and data["status"] == "succeeded"
    assert httpx.get(f"{server.url}/api/jobs/{filled.finished_job}/events", params={"after": "-1"}).status_code == 400


def test_nothing_but_get_is_answered(server):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/api/experts", "/experts/arc-smol/1", "/jobs/1"):
            assert httpx.request(method, server.url + path).status_code == 405, (method, path)


def test_best_per_task_is_t2reg_best_with_its_ties_marked(server, filled):
    cli = _t2reg_json(filled, "best", "--task", "arc-easy", "--protocol", "reported:arc-easy")
    data = httpx.get(f"{server.url}/api/best", params={"task": "arc-easy", "protocol": "reported:arc-easy"}).json()
    assert [(r["ref"], r["value"], r["overlaps_leader"]) for r in data["rows"]] == \
        [(r["ref"], r["value"], r["overlaps_leader"]) for r in cli] == \
        [("arc-smol:1", 0.55, False), ("arc-smol-b:1", 0.5, True)]
    html = httpx.get(f"{server.url}/best", params={"task": "arc-easy", "protocol": "reported:arc-easy"}).text
    assert re.search(r'data-ref="arc-smol-b:1">.*?class="tie"[^>]*>~<', html, re.S)
    default = httpx.get(f"{server.url}/api/best", params={"task": "arc-easy"}).json()
    assert default["protocol"] == filled.protocol and [r["ref"] for r in default["rows"]] == [filled.native]


def test_picking_a_protocol_in_the_browser_ranks_under_it(server, browser, filled):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{server.url}/best?task=arc-easy")
    assert [r.get_attribute("data-ref") for r in browser.find_elements(By.CSS_SELECTOR, "#best tbody tr")] == \
        [filled.native]
    Select(browser.find_element(By.ID, "protocol")).select_by_value("reported:arc-easy")
    browser.find_element(By.CSS_SELECTOR, "form.filter button").click()
    _wait(browser, lambda: "protocol=reported" in browser.current_url)
    ties = [r.find_element(By.CLASS_NAME, "tie").text for r in browser.find_elements(By.CSS_SELECTOR, "#best tbody tr")]
    assert ties == ["", "~"]


# -- a paired comparison and the base models -------------------------------------------------------------------


def _t2reg_json(filled, *args: str):
    done = subprocess.run([sys.executable, "-m", "t2reg.cli", *filled.cli_args, *args, "--json"],
                          capture_output=True, text=True, cwd=CODE_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compare_shows_what_t2reg_compare_prints(server, filled):
    cli = _t2reg_json(filled, "compare", filled.native, filled.base, "--protocol", filled.protocol,
                      "--data-dir", str(filled.data))
    data = httpx.get(f"{server.url}/api/compare",
                     params={"a": filled.native, "b": filled.base, "protocol": filled.protocol}).json()
    assert data["paired"] == cli
    # arc-smol:1 answered AABA, the base model BBCA, the right answers are ABBA
    assert (cli["n"], cli["accuracy_x"], cli["accuracy_y"], cli["only_x"], cli["only_y"]) == (4, 0.75, 0.5, 2, 1)
    assert cli["delta"] == -0.25 and cli["logprob_delta"] == -0.5
    html = httpx.get(f"{server.url}/compare",
                     params={"a": filled.native, "b": filled.base, "protocol": filled.protocol}).text
    assert 'id="delta">-0.2500<' in html and 'id="n">4<' in html
    # beside the difference, the trivial explanations: right answers ABBA (a tie: the first seen is the constant)
    assert cli["constant_baseline"] == {"answer": "A", "accuracy": 0.5}
    assert (cli["predictions_x"], cli["predictions_y"]) == ({"A": 3, "B": 1}, {"A": 1, "B": 2, "C": 1})
    assert 'id="constant">A: 0.5' in html and 'id="spread">A:3 B:1 / A:1 B:2 C:1 <' in html
    # every option's score moved by the same amount: the right answer's share among them did not move
    assert cli["choice_logprob_delta"] == 0 and 'id="choice-logprob">+0.0000 (+0.0000 to +0.0000)<' in html


def test_the_disagreements_are_the_questions_answered_differently(server, filled):
    from t2reg.adaptation.tasks import get_task

    texts = {ex.id: ex.question for ex in get_task("arc-easy").examples("test", filled.data)}
    data = httpx.get(f"{server.url}/api/compare",
                     params={"a": filled.native, "b": filled.base, "protocol": filled.protocol}).json()
    ids = filled.questions
    assert data["disagreeing"] == 3 and data["questions_note"] is None
    assert [(d["id"], d["prediction_a"], d["prediction_b"], d["answer"], d["correct_a"], d["correct_b"])
            for d in data["disagreements"]] == [(ids[0], "A", "B", "A", True, False),
                                                (ids[1], "A", "B", "B", False, True),
                                                (ids[2], "B", "C", "B", True, False)]
    assert [d["question"] for d in data["disagreements"]] == [texts[i] for i in ids[:3]]
    swapped = httpx.get(f"{server.url}/api/compare",
                        params={"a": filled.base, "b": filled.native, "protocol": filled.protocol}).json()
    assert swapped["paired"]["delta"] == 0.25 and [d["prediction_a"] for d in swapped["disagreements"]] == \
        ["B", "B", "C"]


def test_a_comparison_without_recorded_results_is_a_clean_error_and_evaluates_nothing(server, filled):
    def scores() -> tuple:
        with Registry(filled.settings()) as registry:
            return registry.get("arc-smol-b:1").evaluations, registry.model_evaluations("smollm2-135m")

    before = scores()
    cases = [({"a": filled.native, "b": filled.base, "protocol": "nope"}, 404, "no protocol 'nope'"),
             ({"a": filled.native, "b": "arc-smol-b:1", "protocol": filled.protocol}, 404,
              "arc-smol-b:1 has no per-question results recorded under protocol"),
             ({"a": filled.native, "b": "nobody:1", "protocol": filled.protocol}, 404, "no expert named 'nobody'"),
             ({"a": filled.native, "b": filled.base, "protocol": "reported:arc-easy"}, 400,
              "recorded without per-question results"),
             ({"a": filled.native, "protocol": filled.protocol}, 400, "give both subjects")]
    for params, status, words in cases:
        response = httpx.get(f"{server.url}/api/compare", params=params)
        assert response.status_code == status and words in response.json()["error"], params
        page = httpx.get(f"{server.url}/compare", params=params)
        assert page.status_code == status and f"<h1>{status}</h1>" in page.text, params
    assert scores() == before
    empty = httpx.get(f"{server.url}/api/compare").json()
    assert empty["paired"] is None and [p["id"] for p in empty["protocols"]] == [filled.protocol]


def test_picking_a_subject_to_compare_with_from_a_version_page(server, browser, filled, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{server.url}/experts/arc-smol/1")
    other = browser.find_element(By.ID, "other")
    assert other.get_attribute("value") == "base:HuggingFaceTB/SmolLM2-135M-Instruct"
    other.clear()
    other.send_keys(filled.base)
    Select(browser.find_element(By.ID, "compare-protocol")).select_by_value(filled.protocol)
    browser.find_element(By.CSS_SELECTOR, "#compare-form button").click()
    _wait(browser, lambda: "/compare?" in browser.current_url)
    assert browser.find_element(By.ID, "delta").text == "-0.2500"
    assert browser.find_element(By.ID, "discordant").text == "2 / 1"
    rows = browser.find_elements(By.CSS_SELECTOR, "#disagreements tbody tr")
    assert [r.get_attribute("data-id") for r in rows] == list(filled.questions[:3])
    browser.save_screenshot(str(tmp_path / "compare.png"))


def test_the_models_page_lists_each_model_and_its_cached_spectra(server, browser, filled):
    from selenium.webdriver.common.by import By

    data = httpx.get(f"{server.url}/api/models").json()
    by_name = {row["model"]["name"]: row for row in data["models"]}
    tiny = by_name[filled.tiny]
    assert tiny["model"]["aliases"] == ["tiny"] and tiny["model"]["architecture"] == "LlamaForCausalLM"
    assert tiny["spectra"]["groups"] == ["mlp"] and tiny["spectra"]["matrices"] == 6  # 2 layers x 3 MLP matrices
    assert tiny["spectra"]["fingerprint"] == tiny["model"]["spectra_fingerprint"]
    assert by_name["HuggingFaceTB/SmolLM2-135M-Instruct"]["spectra"] is None  # a shape table: nothing decomposed
    browser.get(f"{server.url}/models")
    cells = {r.get_attribute("data-model"): r.find_element(By.CLASS_NAME, "spectra").text
             for r in browser.find_elements(By.CSS_SELECTOR, "#models tbody tr")}
    assert cells[filled.tiny].startswith("mlp: 6 matrices") and cells["google/gemma-3-270m"] == "no"
