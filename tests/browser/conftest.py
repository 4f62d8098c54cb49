"""Real-browser harness: a uvicorn started by the tests, driven by Debian's Chromium.

Chromium comes from Debian (`apt-get install chromium`), never from `playwright install`.
With WALKTHROUGH_TEST_REQUIRE_BROWSER=1 (CI) a missing Chromium is an error, not a skip.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, TABLET, LiveServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_items = [i for i in items if "browser" in i.keywords]
    if not browser_items or Path(CHROMIUM).exists():
        return
    if os.environ.get("WALKTHROUGH_TEST_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(
            f"Chromium is required for the browser tests but {CHROMIUM} does not exist "
            "(apt-get install -y chromium)."
        )
    for item in browser_items:
        item.add_marker(pytest.mark.skip(reason=f"Chromium not installed at {CHROMIUM}"))


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of this test's own, which it may stop and deploy again."""
    server = LiveServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def tablet(browser: Browser) -> Iterator[BrowserContext]:
    """A browser context sized and behaving like a tablet held in portrait."""
    context = browser.new_context(viewport=TABLET, has_touch=True, is_mobile=False)
    yield context
    context.close()


@pytest.fixture
def page(tablet: BrowserContext) -> Page:
    return tablet.new_page()
