"""`catalog serve` in a real browser: the system Chromium driven by Playwright.

One server (a real `catalog serve` process on a free port) and one browser serve the whole
module. Every request the pages make to anywhere but this machine is blocked and recorded, and
every console error is recorded: both must stay empty. The README's screenshot is taken here
(set CATALOG_UPDATE_SCREENSHOT=1 to write it to docs/browse.png).

Without Chromium (or Playwright) these tests skip with the reason, except under CI, where they
fail: `.ci/run` installs Chromium with apt when it is missing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("CATALOG_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = REPO_ROOT / "docs" / "browse.png"


def _require(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class Served:
    url: str
    db: Path
    digest_before: str
    seconds_to_first_page: float


@dataclass
class Browser:
    page: Any
    problems: list[str] = field(default_factory=list)
    """Console errors, page errors and requests that left this machine."""


@pytest.fixture(scope="module")
def served(v0512_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`catalog serve --port 0` on a copy of the v0.5.12 catalog, until the module ends."""
    _require(CHROMIUM.exists(), f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    db = tmp_path_factory.mktemp("served") / "catalog.db"
    shutil.copyfile(v0512_template, db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "catalog.cli", "--db", str(db), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if " at http" not in line:
            process.kill()
            pytest.fail(f"catalog serve did not start: {line}{process.communicate()[1]}")
        url = line.split(" at ", 1)[1].split()[0].rstrip("/")
        yield Served(url, db, digest, time.perf_counter() - started)
    finally:
        process.terminate()  # SIGTERM: uvicorn shuts down, and so does the command, cleanly
        _, errors = process.communicate(timeout=20)
    assert process.returncode == 0 and "Traceback" not in errors, errors


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "Playwright is not installed (pip install -e '.[test]')")
        raise
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        opened = Browser(context.new_page())

        def route(request_route: Any) -> None:
            url = request_route.request.url
            if url.startswith(("data:", "blob:")) or urlparse(url).hostname in (
                "127.0.0.1",
                "localhost",
            ):
                request_route.continue_()
                return
            opened.problems.append(f"request to another machine: {url}")
            request_route.abort()

        context.route("**/*", route)
        page = opened.page
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and opened.problems.append(f"console error on {page.url}: {message.text}")
            ),
        )
        page.on("pageerror", lambda error: opened.problems.append(f"{page.url}: {error}"))
        yield opened
        chromium.close()


def test_search_from_the_home_page_finds_the_models(served: Served, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.page
    page.goto(served.url + "/")
    expect(page).to_have_title(re.compile("^Model catalog"))
    page.fill("#catalog-q", "llama")
    page.keyboard.press("Enter")
    page.wait_for_url("**/-/search?q=llama")
    results = page.get_by_test_id("search-results")
    expect(results).to_contain_text("meta/llama-2-7b")
    expect(results.locator("tbody tr").first).to_contain_text("model")
    assert browser.problems == []


def test_a_model_page_says_which_deployment_runs_it_and_why(
    served: Served, browser: Browser
) -> None:
    from playwright.sync_api import expect

    page = browser.page
    page.goto(served.url + "/-/search?q=llama+2+7b")
    page.get_by_role("link", name="meta/llama-2-7b", exact=True).click()
    page.wait_for_url("**/model/meta/llama-2-7b")
    expect(page.get_by_test_id("default-deployment")).to_contain_text("together/llama-2-7b")
    expect(page.get_by_test_id("chosen-by")).to_have_text("first-non-deprecated")
    expect(page.get_by_test_id("tags")).to_contain_text("TEXT_MODEL_TAG")
    page.screenshot(path=str(_screenshot_path(served)), full_page=False)
    page.get_by_test_id("default-deployment").get_by_role("link").click()
    page.wait_for_url("**/catalog/deployments/together~2Fllama-2-7b")
    expect(page.locator("td.col-model_name a")).to_have_attribute("href", "/model/meta/llama-2-7b")
    expect(page.locator("td.col-tokenizer_name a")).to_have_text("meta-llama/Llama-2-7b-hf")
    assert browser.problems == []


def _screenshot_path(served: Served) -> Path:
    if os.environ.get("CATALOG_UPDATE_SCREENSHOT"):
        return SCREENSHOT
    return served.db.parent / "browse.png"


def test_a_canned_query_runs_with_its_parameter(served: Served, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.page
    page.goto(served.url + "/catalog/host_serves")
    page.fill('input[name="host"]', "together")
    page.get_by_role("button", name="Run SQL").click()
    page.wait_for_url("**host=together**")
    expect(page.locator("table.rows-and-columns")).to_contain_text("together/llama-2-7b")
    assert browser.problems == []


def test_each_chart_page_draws_without_a_console_error(served: Served, browser: Browser) -> None:
    page = browser.page
    page.goto(served.url + "/-/dashboards/catalog")
    for chart in ("models-per-quarter", "deployments-per-host"):
        page.locator(f"#chart-{chart} canvas, #chart-{chart} svg.marks").first.wait_for()
    page.goto(served.url + "/-/schema")
    page.locator('#schema[data-rendered="1"]').wait_for()
    assert "deployments" in (page.locator("#schema svg").text_content() or "")
    assert browser.problems == []


def test_browsing_never_wrote_to_the_catalog(served: Served, browser: Browser) -> None:
    """Last in the module: after the whole session the file is byte for byte as it was."""
    assert hashlib.sha256(served.db.read_bytes()).hexdigest() == served.digest_before
    print(f"catalog serve: first page after {served.seconds_to_first_page:.2f} s")
