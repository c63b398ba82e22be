"""The README's screenshots of `t2reg ui`, taken from a real registry by a real browser (never drawn by hand).

Starts ``t2reg --home HOME ui`` on a free loopback port, opens every page kind in headless Chromium (Debian's
``chromium`` and ``chromedriver``, as the ui tests use them), checks that each answers 200 with its heading,
and saves three pages as PNGs here: an adapted expert's version page, its lineage graph, and its job's page.

The home is the demo's (``make demo``, or ``t2reg --home .t2reg-demo demo --quick`` for small budgets).

Usage: python docs/screenshots.py [--home .t2reg-demo] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"t2reg: ui on (http://\S+)")


def start_ui(home: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "t2reg.cli", "--home", str(home), "ui", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = READY.search(proc.stdout.readline())
        if found:
            return proc, found.group(1)
    proc.kill()
    raise SystemExit("t2reg ui did not start within 60 s")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1100"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=str(ROOT / ".t2reg-demo"))
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    proc, url = start_ui(Path(args.home))
    try:
        experts = get_json(f"{url}/api/experts")["rows"]
        adapted = next(row for row in experts if row["source"] == "adapted")
        version = f"/experts/{adapted['name']}/{adapted['version']}"
        page = get_json(f"{url}/api{version}")
        protocol = page["comparable"][0]  # the adapted expert's held-out results, recorded with the base's
        pages = {"experts": "/", "version": version, "lineage": f"{version}/lineage",
                 "best": f"/best?task={adapted['task']}",
                 "compare": f"/compare?a=base:{adapted['model']}&b={adapted['ref']}&protocol={protocol}",
                 "jobs": "/jobs", "job": f"/jobs/{page['job']}", "models": "/models"}
        for path in pages.values():  # every page answers (urlopen raises on an error status)
            urllib.request.urlopen(url + path, timeout=60).close()
        driver = browser()
        try:
            for name, path in pages.items():
                driver.get(url + path)
                heading = driver.find_element("css selector", "h1").text
                print(f"{name:<8} {path:<60} {heading}")
                if name in ("version", "lineage", "job"):
                    time.sleep(0.5)  # the job page's first poll
                    driver.save_screenshot(str(Path(args.out) / f"ui-{name}.png"))
        finally:
            driver.quit()
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
