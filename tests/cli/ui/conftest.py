"""One filled registry, one `t2reg ui` server and one browser per test module (they take seconds to make)."""

from __future__ import annotations

import os

import pytest

from tests.helpers.ui import CHROMEDRIVER, CHROMIUM, Filled, UiProcess, chromium, fill_registry


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Filled:
    return fill_registry(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def server(filled, tmp_path_factory):
    ui = UiProcess(filled.home, "--data-dir", str(filled.data), log=tmp_path_factory.mktemp("ui-log") / "ui.log",
                   options=filled.options)
    yield ui
    assert ui.stop() == 0


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; CI must run the browser tests, so a missing one fails there."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing on CI (make test installs them: .ci/ensure-chromium)")
        pytest.skip(f"{', '.join(missing)} missing (.ci/ensure-chromium installs chromium)")
    driver = chromium()
    yield driver
    driver.quit()
