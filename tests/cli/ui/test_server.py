"""Where `t2reg ui` listens and who may read it: loopback by default, a key for anything else, one clear line
when it cannot start."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from t2reg.errors import UnsafeBindError
from tests.helpers.serving import t2reg as run_cli
from tests.helpers.ui import CODE_ROOT, UiProcess, run_ui

pytestmark = pytest.mark.timeout(300)
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-server") / "home"
    run_cli(home, "init")
    return home


@pytest.fixture(scope="module")
def keyed(home, tmp_path_factory):
    """Listening on every address, so a key is required; reached here through loopback."""
    ui = UiProcess(home, "--host", "0.0.0.0", "--api-key", KEY, log=tmp_path_factory.mktemp("log") / "ui.log")
    ui.url = ui.url.replace("0.0.0.0", "127.0.0.1")
    yield ui
    assert ui.stop() == 0


def test_an_open_host_without_a_key_is_refused_at_start(home):
    done = run_ui(home, "--host", "0.0.0.0")
    assert done.returncode == UnsafeBindError.exit_code == 6
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("t2reg: error: --host '0.0.0.0' is reachable from other machines: give an "
                                  "--api-key")


def test_a_registry_that_cannot_be_opened_is_one_line_as_the_cli_says_it(tmp_path):
    done = run_ui(tmp_path / "no-home")
    listed = subprocess.run([sys.executable, "-m", "t2reg.cli", "--home", str(tmp_path / "no-home"), "list"],
                            capture_output=True, text=True, cwd=CODE_ROOT, timeout=60)
    assert done.returncode == listed.returncode != 0 and done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr == listed.stderr and "no registry at" in done.stderr and "`t2reg init`" in done.stderr


def test_with_a_key_every_page_and_endpoint_needs_it(keyed):
    for path in ("/", "/api/experts", "/jobs", "/api/jobs", "/api/jobs/1/events", "/experts/a/1/file"):
        assert httpx.get(keyed.url + path).status_code == 401, path
        wrong = httpx.get(keyed.url + path, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401, path
    assert httpx.get(keyed.url + "/api/experts").json()["error"].startswith("this registry needs an API key")
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(keyed.url + "/", headers=bearer).status_code == 200
    assert httpx.get(keyed.url + "/api/experts", headers=bearer).json()["total"] == 0
    assert httpx.get(keyed.url + "/static/ui.css").status_code == 200  # the login page's style needs no key


def test_logging_in_sets_a_cookie_that_opens_the_pages(keyed):
    with httpx.Client(base_url=keyed.url) as client:
        refused = client.post("/login", data={"key": "wrong", "next": "/jobs"})
        assert refused.status_code == 401 and "wrong key" in refused.text and not client.cookies
        accepted = client.post("/login", data={"key": KEY, "next": "/jobs"})
        assert accepted.status_code == 303 and accepted.headers["location"] == "/jobs"
        assert KEY not in accepted.headers["set-cookie"] and "HttpOnly" in accepted.headers["set-cookie"]
        assert client.get("/jobs").status_code == 200 and client.get("/api/jobs").json() == {"jobs": []}
    elsewhere = httpx.post(keyed.url + "/login", data={"key": KEY, "next": "//evil.example/"})
    assert elsewhere.headers["location"] == "/"
