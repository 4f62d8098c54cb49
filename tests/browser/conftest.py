"""Real-browser harness: a uvicorn started by the tests, driven by Debian's Chromium and, for
the journeys every tablet must survive (the `device` fixture), by Debian's WebKitGTK too.

Chromium comes from Debian (`apt-get install chromium`), never from `playwright install`;
WebKitGTK from Debian's webkit2gtk-driver, xvfb, python3-gi and gir1.2-webkit2-4.1.
With WALKTHROUGH_TEST_REQUIRE_BROWSER=1 (CI) a missing browser is an error, not a skip.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.browser.devices import (
    ChromiumDevice,
    Device,
    FaultProxy,
    WebKitDevice,
    webkit_driver,
    webkit_missing,
)
from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, TABLET, LiveServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_items = [i for i in items if "browser" in i.keywords]
    if not browser_items:
        return
    missing: list[str] = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    webkit_items = [i for i in browser_items if "webkit" in i.keywords]
    lacking = webkit_missing() if webkit_items else None
    if lacking:
        missing.append(lacking)
    if not missing:
        return
    if os.environ.get("WALKTHROUGH_TEST_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError("The browser tests need " + "; ".join(missing) + ".")
    for item in browser_items:
        if not Path(CHROMIUM).exists() and "webkit" not in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"Chromium not installed at {CHROMIUM}"))
        elif lacking and "webkit" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"WebKit needs {lacking}"))


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
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture(scope="session")
def webkit_driver_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with webkit_driver(tmp_path_factory.mktemp("webkit")) as url:
        yield url


@pytest.fixture
def network(live_server: LiveServer) -> Iterator[FaultProxy]:
    """The tablet's way to the server, which the test may cut or make fail."""
    proxy = FaultProxy(live_server.url)
    yield proxy
    proxy.stop()


@pytest.fixture(params=["chromium", pytest.param("webkit", marks=pytest.mark.webkit)])
def device(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Device]:
    """A tablet, in each engine: Chromium, and WebKitGTK (the engine of every iPad browser)."""
    profile = tmp_path / "profile"
    made: Device
    if request.param == "webkit":
        made = WebKitDevice(request.getfixturevalue("webkit_driver_url"), profile)
    else:
        made = ChromiumDevice(request.getfixturevalue("playwright"), profile)
    yield made
    made.close()


@pytest.fixture
def tablet(browser: Browser) -> Iterator[BrowserContext]:
    """A browser context sized and behaving like a tablet held in portrait."""
    context = browser.new_context(viewport=TABLET, has_touch=True, is_mobile=False)
    yield context
    context.close()


@pytest.fixture
def page(tablet: BrowserContext) -> Page:
    return tablet.new_page()
