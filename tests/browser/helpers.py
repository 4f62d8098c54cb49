"""Helpers for the real-browser tests (fixtures stay in conftest.py): the uvicorn they drive,
Debian's Chromium, screenshots, signing in, and waiting on conditions."""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from app.db import make_engine, migrate

CHROMIUM = os.environ.get("WALKTHROUGH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TABLET = {"width": 820, "height": 1180}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A uvicorn process serving the app on 127.0.0.1 with its own SQLite database."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.extra_env: dict[str, str] = {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{workdir / 'live.db'}"
        self.log = (workdir / "uvicorn.log").open("w")
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "WALKTHROUGH_ENV": "test",
            "WALKTHROUGH_DATABASE_URL": self.database_url,
            "WALKTHROUGH_SECRET_KEY": "browser-test-secret-key",
            **self.extra_env,
        }

    def start(self) -> None:
        migrate(self.database_url)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "demo-data"],
            env=self.env(),
            check=True,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
        )
        self.serve()

    def serve(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env(),
            cwd=self.workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited; see {self.log.name}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("uvicorn did not answer /healthz within 30 s")

    def halt(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def restart(self, **extra_env: str) -> None:
        """Deploy again on the same address and database (e.g. a new build)."""
        self.halt()
        self.extra_env.update(extra_env)
        self.serve()

    def stop(self) -> None:
        self.halt()
        self.log.close()

    def observation_ids(self, teacher: str) -> list[uuid.UUID]:
        """Ids of the observations of a (typed) teacher, as the server stored them."""
        from sqlmodel import Session, col, select

        from app.observations.models import Observation

        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                stmt = select(col(Observation.id)).where(col(Observation.teacher_name) == teacher)
                return list(session.exec(stmt))
        finally:
            engine.dispose()

    def count(self, sql: str, **params: object) -> int:
        """A number from the server's database (to check what really arrived)."""
        return int(self._one(sql, params))

    def text(self, sql: str, **params: object) -> str:
        """A value from the server's database, as text."""
        return str(self._one(sql, params))

    def _one(self, sql: str, params: dict[str, object]) -> object:
        from sqlalchemy import text

        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).scalar_one()
        finally:
            engine.dispose()

    def execute(self, sql: str, **params: object) -> None:
        """Change the server's database behind its back (e.g. a sign-in that expired)."""
        from sqlalchemy import text

        engine = make_engine(self.database_url)
        try:
            with engine.begin() as conn:
                conn.execute(text(sql), params)
        finally:
            engine.dispose()


def screenshot(page: Page, name: str) -> Path:
    """Keep a screenshot for people to look at (test-artifacts/, not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Sign in through the real form."""
    page.goto(base_url + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")


def eventually(page: Page, check: Callable[[], object], timeout_s: float = 20.0) -> None:
    """Wait until `check()` is true, polling while Playwright runs the tests' route handlers
    (a Python handler only runs while Playwright waits, never during time.sleep)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        page.wait_for_timeout(100)


# The offline client is an ES module with no global; tests reach the instance the page loaded
# (one per document) by importing it, and name it `Walkthrough` in their expressions.
_IMPORT_CLIENT = (
    "async () => { if (!window.Walkthrough) "
    "window.Walkthrough = (await import('/static/offline.js')).default; }"
)


def client(page: Page, expression: str, arg: object = None) -> Any:
    """Evaluate a JavaScript expression (or function) that uses `Walkthrough`, the page's
    offline client module."""
    page.evaluate(_IMPORT_CLIENT)
    return page.evaluate(expression, arg)


def js_eventually(page: Page, expression: str, arg: object = None, timeout_s: float = 20.0) -> None:
    """Wait until a JavaScript expression, which may give a promise, comes out true.

    page.wait_for_function is no use for IndexedDB or the Cache API: a predicate that returns
    a promise counts as true at once, whatever the promise's value."""
    if "Walkthrough" in expression:
        eventually(page, lambda: bool(client(page, expression, arg)), timeout_s)
    else:
        eventually(page, lambda: bool(page.evaluate(expression, arg)), timeout_s)
