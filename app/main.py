"""create_app(): settings, database, middleware, routers, static files and error handlers."""

import asyncio
import contextlib
import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.accounts.deps import verify_csrf
from app.accounts.routes import router as accounts_router
from app.analytics.routes import router as analytics_router
from app.calibration.routes import router as calibration_router
from app.config import Settings, get_settings
from app.db import make_engine, set_district_timezone
from app.exports.routes import router as exports_router
from app.feedback.mail import sender_loop
from app.feedback.routes import router as feedback_router
from app.observations.routes import router as observations_router
from app.rubrics.loader import RubricProblems, sync_rubrics
from app.rubrics.routes import router as rubrics_router
from app.sync.routes import extra_openapi_schemas
from app.sync.routes import router as sync_router
from app.web import (
    APP_DIR,
    SECURITY_HEADERS,
    SWAGGER_UI_VERSION,
    compute_build_id,
    install_error_handlers,
    reject_nul_text,
    render,
)


class SecurityHeaders:
    """Adds conservative security headers (and no-store caching) to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # Pages, JSON and CSV downloads carry personnel data: no shared or disk cache keeps
        # them unless a route says otherwise (static files, immutable rubric versions).
        path = scope["path"]
        cacheable = path.startswith("/static/") or path == "/favicon.ico"
        # Vendored files carry their version in the name: kept for a year. Other static
        # files are revalidated (ETag) on each use; devices keep them offline per build.
        static_cache = (
            b"public, max-age=31536000, immutable"
            if path.startswith("/static/vendor/")
            else b"public, max-age=86400"
            if path == "/favicon.ico"
            else b"no-cache"
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", static_cache if cacheable else b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


log = logging.getLogger("walkthrough")


class RedactFeedbackLinks(logging.Filter):
    """A feedback link's address is its key: access logs show /f/… instead of the token."""

    PATTERN = re.compile(r"/f/[^/?#\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub("/f/…", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self.PATTERN.sub("/f/…", record.msg)
        return True


def _redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactFeedbackLinks) for f in access.filters):
        access.addFilter(RedactFeedbackLinks())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load rubric versions at start-up; refuse to start if a published one was edited."""
    try:
        report = sync_rubrics(app.state.engine, app.state.settings.rubrics_dir)
    except RubricProblems as exc:
        log.error("Walkthrough cannot start because of its rubric files:\n%s", exc)
        raise
    if report.inserted or report.updated:
        log.info("rubrics loaded: %s", ", ".join(report.inserted + report.updated))
    # Everything built at start-up lives as long as the process: keep it out of the cyclic
    # garbage collector's full passes, which otherwise stall busy requests (sync batches).
    gc.freeze()
    # The e-mail outbox, sent in the background when a mail server is configured.
    sender = None
    if app.state.settings.smtp_host:
        sender = asyncio.create_task(
            sender_loop(app.state.engine, app.state.settings, app.state.mail_wake)
        )
    try:
        yield
    finally:
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


def _document_push_items(app: FastAPI) -> None:
    """Add the push item schemas to the OpenAPI components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                extra_openapi_schemas()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for the given settings (default: from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=lifespan,
        title="Walkthrough",
        summary="Classroom observation, offline sync and observer calibration",
        dependencies=[Depends(reject_nul_text), Depends(verify_csrf)],
        docs_url=None,  # served below from vendored files: the CSP allows no CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    set_district_timezone(app.state.engine, settings.timezone)
    app.state.build_id = settings.build_id or compute_build_id()
    app.state.mail_wake = asyncio.Event()  # set after a share with e-mail commits
    _redact_access_log()

    # Pages and API answers are compressed; streamed exports and zips are not: compressing a
    # large download costs the server more CPU than it saves on a district network.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=500,
        compresslevel=6,  # zlib's default: most of level 9's saving at a fraction of its CPU
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "text/csv", "application/zip"),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key(),
        session_cookie="walkthrough_session",
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.cookies_secure,
    )
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)

    app.mount("/static", StaticFiles(directory=APP_DIR / "static"), name="static")
    app.include_router(accounts_router)
    app.include_router(rubrics_router)
    app.include_router(observations_router)
    app.include_router(analytics_router)
    app.include_router(sync_router)
    app.include_router(calibration_router)
    app.include_router(exports_router)
    app.include_router(feedback_router)
    _document_push_items(app)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request) -> Response:
        """Swagger UI for the API, from vendored files and a script of ours (no inline code)."""
        return render(request, "api_docs.html", {"swagger_ui": SWAGGER_UI_VERSION})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(APP_DIR / "static" / "icons" / "favicon.ico", media_type="image/x-icon")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        """Liveness and database reachability, for load balancers and monitors."""
        try:
            with app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return JSONResponse({"status": "error", "database": reason[:300]}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app
