"""One small harness for the journeys that must hold on every tablet browser: a scenario is
written once against a `Device` (one tablet: one browser profile that survives a restart) and
its `Tab`, and runs in Chromium (Playwright) and in WebKitGTK (Selenium and WebKitWebDriver),
the engine of every iPad browser.

The network between the tablet and the server is a `FaultProxy` of the test's own: it goes
offline (every connection dropped, as when the wifi is gone or a captive portal answers
nothing), answers 5xx, or stores a request and then cuts the connection before the answer.
Both engines meet the same faults, and nothing depends on an engine's own request
interception (which WebDriver does not have).
"""

import http.client
import os
import shutil
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.browser.helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TABLET, _free_port

WEBKIT_DRIVER = os.environ.get("WALKTHROUGH_WEBKIT_DRIVER", "/usr/bin/WebKitWebDriver")
WEBKIT_BROWSER = Path(__file__).with_name("webkit_browser.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-gi

# ---------------------------------------------------------------------------------------------
# The network: a proxy in front of the server that can fail the way school wifi does.

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


class FaultProxy:
    """An HTTP proxy on its own port in front of `upstream`. The tablet talks to `url`.

    `offline()` drops every request without an answer; `plan(path, *actions)` makes the next
    requests to `path` meet, in order, `"500"`/`"503"` (an error page), `"drop"` (the
    connection cut, nothing sent on) or `"cut"` (sent on and stored, but the answer never
    arrives). Every response closes its connection, so a cut is never retried silently by
    the browser on a reused connection."""

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        self.upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self.is_offline = False
        self.calls: Counter[str] = Counter()
        self._plans: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(_RelayHandler):
            relay = proxy

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def offline(self) -> None:
        self.is_offline = True

    def online(self) -> None:
        self.is_offline = False

    def plan(self, path: str, *actions: str) -> None:
        with self._lock:
            self._plans[path] = list(actions)

    def next_action(self, path: str) -> str:
        with self._lock:
            self.calls[path] += 1
            if self.is_offline:
                return "drop"
            plan = self._plans.get(path)
            return plan.pop(0) if plan else "pass"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser that gave up on a request (a navigation, a page closed) is normal


class _RelayHandler(BaseHTTPRequestHandler):
    relay: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._relay()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _drop(self) -> None:
        self.close_connection = True
        # A reset, as when the network is gone, rather than an orderly end of the stream.
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self.connection.close()

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        action = self.relay.next_action(urlsplit(self.path).path)
        if action == "drop":
            self._drop()
            return
        if action in {"500", "502", "503"}:
            page = b"<h1>Server trouble</h1>"
            self.send_response(int(action))
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(page)
            self.close_connection = True
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(*self.relay.upstream, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError:
            self._drop()
            return
        finally:
            upstream.close()
        if action == "cut":  # the server stored it; the answer is lost on the way back
            self._drop()
            return
        self.send_response_only(answer.status, answer.reason)  # the server's own Date, Server
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        if self.command == "HEAD":
            length = answer.getheader("Content-Length")
            if length is not None:
                self.send_header("Content-Length", length)
        elif answer.status not in (204, 304) and answer.status >= 200:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True


# ---------------------------------------------------------------------------------------------
# A tab, whatever the engine.

# The offline client is an ES module with no global; a script that names `Walkthrough` gets
# the instance the page loaded (one per document) by importing it.
_PRELUDE = (
    "if (src.includes('Walkthrough') && !window.Walkthrough) "
    "window.Walkthrough = (await import('/static/offline.js')).default;"
)
# Finds a button or link by its accessible name (its aria-label, else its text), visible only.
_BY_NAME = """([selector, name]) => [...document.querySelectorAll(selector)].find(e =>
  (e.getAttribute('aria-label') || e.textContent || e.value || '').replace(/\\s+/g, ' ').trim()
    === name && e.getClientRects().length > 0) || null"""


def _navigating(exc: Exception) -> bool:
    """Whether a script failed only because the page navigated while it ran."""
    text = str(exc)
    return any(
        part in text
        for part in (
            "Execution context was destroyed",  # Playwright
            "navigat",  # Playwright and WebKitWebDriver word it in several ways
            "no such frame",
            "stale element",
            "JavaScript error",  # WebKitWebDriver, a script cut off by a new document
        )
    )


class Tab(ABC):
    """One page of a device. Selectors are CSS; buttons and links are found by their name."""

    engine: str

    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def goto(self, url: str) -> None: ...

    @abstractmethod
    def reload(self) -> None: ...

    @abstractmethod
    def expire_session(self) -> None:
        """The browser's cookies gone, as when a sign-in expires (the device keeps the rest)."""

    @abstractmethod
    def tap(self, css: str) -> None:
        """A finger's tap on the element (touch where the engine has it)."""

    @abstractmethod
    def _tap_named(self, selector: str, name: str) -> None: ...

    @abstractmethod
    def fill(self, css: str, text: str) -> None: ...

    @abstractmethod
    def js(self, function: str, arg: object = None) -> Any:
        """Call a JavaScript function (which may be async) with `arg`; `Walkthrough` in its
        source is the page's offline client."""

    @abstractmethod
    def screenshot(self, name: str) -> Path: ...

    @abstractmethod
    def pause(self, seconds: float) -> None: ...

    def tap_button(self, name: str) -> None:
        self._tap_named("button, input[type=submit]", name)

    def tap_link(self, name: str) -> None:
        self._tap_named("a", name)

    def wait(self, check: Callable[[], object], what: str, timeout_s: float = 20.0) -> None:
        """Wait until `check()` is true. A check that fails because the page was between two
        documents (a script run during a navigation) is tried again."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if check():
                    return
                problem = ""
            except Exception as exc:  # each engine words its navigation errors its own way
                if not _navigating(exc):
                    raise
                problem = f"; last: {exc}"
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.engine}: not in time: {what} (at {self.url}){problem}")
            self.pause(0.1)

    def wait_js(self, function: str, arg: object = None, timeout_s: float = 20.0) -> None:
        self.wait(lambda: bool(self.js(function, arg)), function, timeout_s)

    def wait_for_url(self, part: str) -> None:
        self.wait(lambda: part in self.url, f"an address with {part!r}")

    def text(self, css: str) -> str:
        return str(
            self.js(
                "s => { const e = document.querySelector(s); return e ? e.innerText : '' }", css
            )
        )

    def value(self, css: str) -> str:
        return str(self.js("s => document.querySelector(s)?.value ?? null", css))

    def checked(self, css: str) -> bool:
        return bool(self.js("s => !!document.querySelector(s)?.checked", css))

    def visible(self, css: str) -> bool:
        return bool(
            self.js(
                "s => { const e = document.querySelector(s);"
                " return !!e && e.getClientRects().length > 0 }",
                css,
            )
        )

    def count(self, css: str) -> int:
        return int(self.js("s => document.querySelectorAll(s).length", css))

    def expect_text(self, css: str, part: str, timeout_s: float = 20.0) -> None:
        self.wait(lambda: part in self.text(css), f"{css} to say {part!r}", timeout_s)

    def expect_checked(self, css: str) -> None:
        self.wait(lambda: self.checked(css), f"{css} checked")

    def expect_value(self, css: str, value: str) -> None:
        self.wait(lambda: self.value(css) == value, f"{css} to hold {value!r}")

    def expect_count(self, css: str, n: int, timeout_s: float = 20.0) -> None:
        self.wait(lambda: self.count(css) == n, f"{n} of {css}", timeout_s)

    def wait_for_service_worker(self, attempts: int = 3) -> None:
        """Wait until a service worker is active for the page. An install that failed (one of
        its fetches lost on a loaded machine) leaves `ready` pending for good: like a person,
        load the page again, which registers again."""
        for _ in range(attempts):
            if self.js(
                "() => Promise.race([navigator.serviceWorker.ready.then(() => true),"
                " new Promise(r => setTimeout(() => r(false), 20000))])"
            ):
                return
            self.reload()
        raise AssertionError(f"no service worker became active after {attempts} page loads")


class PlaywrightTab(Tab):
    engine = "chromium"

    def __init__(self, page: Any) -> None:
        self.page = page

    @property
    def url(self) -> str:
        return str(self.page.url)

    def goto(self, url: str) -> None:
        self.page.goto(url)

    def reload(self) -> None:
        self.page.reload()

    def expire_session(self) -> None:
        self.page.context.clear_cookies()

    def tap(self, css: str) -> None:
        self.page.locator(css).tap()

    def _tap_named(self, selector: str, name: str) -> None:
        handle = self.page.wait_for_function(_BY_NAME, arg=[selector, name])
        handle.as_element().tap()

    def fill(self, css: str, text: str) -> None:
        self.page.locator(css).fill(text)

    def js(self, function: str, arg: object = None) -> Any:
        return self.page.evaluate(
            f"async ([src, arg]) => {{ {_PRELUDE} return await ({function})(arg); }}",
            [function, arg],
        )

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def pause(self, seconds: float) -> None:
        self.page.wait_for_timeout(seconds * 1000)


class SeleniumTab(Tab):
    engine = "webkit"

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    def goto(self, url: str) -> None:
        self.driver.get(url)

    def reload(self) -> None:
        self.driver.refresh()

    def expire_session(self) -> None:
        self.driver.delete_all_cookies()

    def _element(self, css: str) -> Any:
        found: list[Any] = []

        def present() -> bool:
            found[:] = self.driver.execute_script(
                "const e = document.querySelector(arguments[0]);"
                "return e && e.getClientRects().length ? [e] : []",
                css,
            )
            return bool(found)

        self.wait(present, f"{css} on the page")
        return found[0]

    def _touch(self, element: Any) -> None:
        from selenium.webdriver.common.actions import interaction
        from selenium.webdriver.common.actions.action_builder import ActionBuilder
        from selenium.webdriver.common.actions.pointer_input import PointerInput

        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        actions = ActionBuilder(
            self.driver, mouse=PointerInput(interaction.POINTER_TOUCH, "finger")
        )
        actions.pointer_action.move_to(element).pointer_down().pointer_up()
        actions.perform()

    def tap(self, css: str) -> None:
        self._touch(self._element(css))

    def _tap_named(self, selector: str, name: str) -> None:
        found: list[Any] = []

        def present() -> bool:
            element = self.driver.execute_script(
                f"return ({_BY_NAME})([arguments[0], arguments[1]])", selector, name
            )
            found[:] = [element] if element is not None else []
            return bool(found)

        self.wait(present, f"{name!r} on the page")
        self._touch(found[0])

    def fill(self, css: str, text: str) -> None:
        element = self._element(css)
        # WebKitWebDriver finds a field below the fold "not interactable": bring it up first.
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        if "\n" in text:  # WebKitWebDriver types no line breaks: paste it, as a person would
            self.driver.execute_script(
                "arguments[0].value = arguments[1];"
                "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
                "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
                element,
                text,
            )
            return
        element.clear()
        element.send_keys(text)

    def js(self, function: str, arg: object = None) -> Any:
        answer = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const [src, arg] = [arguments[0], arguments[1]];"
            f"(async () => {{ {_PRELUDE} return await ({function})(arg); }})()"
            ".then(v => done({ok: v === undefined ? null : v}),"
            " e => done({error: String(e && e.stack || e)}));",
            function,
            arg,
        )
        if not isinstance(answer, dict):  # the page went away before the script answered
            raise RuntimeError("webkit: JavaScript error: no answer (the page navigated)")
        if "error" in answer:
            raise AssertionError(f"webkit: script failed: {answer['error']}")
        return answer["ok"]

    def screenshot(self, name: str) -> Path:
        # WebKitGTK's snapshot is the last frame painted: let the page paint what it shows now.
        self.js("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        self.pause(0.3)
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)


# ---------------------------------------------------------------------------------------------
# A device: one tablet, with a browser profile that outlives a restart of the browser.


class Device(ABC):
    engine: str

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.tab = self._launch()

    @abstractmethod
    def _launch(self) -> Tab: ...

    @abstractmethod
    def close(self) -> None: ...

    def restart(self) -> Tab:
        """The browser quits (as when iPadOS ends it) and starts again on the same profile."""
        self.close()
        self.tab = self._launch()
        return self.tab


class ChromiumDevice(Device):
    engine = "chromium"

    def __init__(self, playwright: Any, profile: Path) -> None:
        self.playwright = playwright
        self.context: Any = None
        super().__init__(profile)

    def _launch(self) -> Tab:
        self.context = self.playwright.chromium.launch_persistent_context(
            str(self.profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=TABLET,
            has_touch=True,
        )
        page = self.context.pages[0] if self.context.pages else self.context.new_page()
        return PlaywrightTab(page)

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None


class WebKitDevice(Device):
    engine = "webkit"

    def __init__(self, driver_url: str, profile: Path) -> None:
        self.driver_url = driver_url
        self.driver: Any = None
        super().__init__(profile)

    def _launch(self) -> Tab:
        from selenium import webdriver
        from selenium.webdriver.remote.client_config import ClientConfig
        from selenium.webdriver.remote.remote_connection import RemoteConnection

        options = webdriver.WebKitGTKOptions()
        options.binary_location = str(WEBKIT_BROWSER)
        options.add_argument("--automation")
        options.add_argument(f"--data-dir={self.profile}")
        options.set_capability("browserName", "WalkthroughWebKit")
        connection = RemoteConnection(
            client_config=ClientConfig(remote_server_addr=self.driver_url)
        )
        self.driver = webdriver.Remote(command_executor=connection, options=options)
        self.driver.set_script_timeout(60)
        return SeleniumTab(self.driver)

    def close(self) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None
        # WebKitWebDriver ends the browser at once; its helper processes may take a moment,
        # and the next start must find the profile free.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running_with(f"--data-dir={self.profile}"):
            time.sleep(0.1)


def _running_with(argument: str) -> bool:
    """Whether a process runs with this exact argument (Linux /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if argument.encode() in cmdline.read_bytes().split(b"\0"):
                return True
        except OSError:
            continue
    return False


# ---------------------------------------------------------------------------------------------
# WebKitGTK's WebDriver on a virtual screen.


def webkit_missing() -> str | None:
    """What this machine lacks for the WebKit tests, or None."""
    if not Path(WEBKIT_DRIVER).exists():
        return f"{WEBKIT_DRIVER} (apt-get install webkit2gtk-driver)"
    if shutil.which("Xvfb") is None:
        return "Xvfb (apt-get install xvfb)"
    probe = "import gi; gi.require_version('Gtk', '3.0'); gi.require_version('WebKit2', '4.1')"
    if (
        not Path(SYSTEM_PYTHON).exists()
        or subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode
    ):
        return "WebKitGTK for Python GI (apt-get install python3-gi gir1.2-webkit2-4.1)"
    return None


@contextmanager
def webkit_driver(log_dir: Path) -> Iterator[str]:
    """Xvfb and WebKitWebDriver, for as long as the tests need them; yields the driver's URL."""
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x1400x24", "-nolisten", "tcp"],
        pass_fds=[write_end],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as displayfd:
        display = displayfd.readline().strip()
    port = _free_port()
    log = (log_dir / "webkitwebdriver.log").open("w")
    driver = subprocess.Popen(
        [WEBKIT_DRIVER, f"--port={port}"],
        env={**os.environ, "DISPLAY": f":{display}"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or driver.poll() is not None:
                raise RuntimeError(f"WebKitWebDriver did not start; see {log.name}")
            time.sleep(0.1)
        yield url
    finally:
        for process in (driver, xvfb):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
