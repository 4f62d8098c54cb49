"""Application settings, read from WALKTHROUGH_* environment variables."""

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("data")
RUBRICS_DIR = Path(__file__).resolve().parent / "rubrics"


class ConfigError(RuntimeError):
    """Raised when the configuration cannot be used; the message says what to set."""


class Settings(BaseSettings):
    """Every knob of the app; see README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix="WALKTHROUGH_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{DATA_DIR / 'walkthrough.db'}"
    secret_key: str | None = None
    secure_cookies: bool | None = None
    session_max_age_seconds: int = 12 * 60 * 60
    district_name: str = "Demo Unified School District"
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 30
    login_window_seconds: int = 15 * 60
    max_upload_bytes: int = 2 * 1024 * 1024
    rubrics_dir: Path = RUBRICS_DIR
    # The district's time zone: how times are shown, and read when a browser sends no offset.
    timezone: str = "America/Chicago"
    # Dashboards flag (never hide) groups with fewer visits than this: too few to read much into.
    small_group_visits: int = Field(default=5, ge=1, le=1000)
    # Coverage: a teacher counts as visited when seen within this many weeks.
    coverage_weeks: int = Field(default=6, ge=1, le=52)
    # Names this deployment's pages and scripts for the offline cache; computed from the
    # files when unset. A new value makes every device fetch a new service worker.
    build_id: str | None = None
    # Certification of observers on a rubric: in each of their latest N revealed calibration
    # sessions (N = certification_sessions_in_a_row), at least this share of their ratings
    # within one level of master and this share exactly on it; valid this many days (one
    # school year) from the last of those sessions.
    calibrated_within_one: float = Field(default=0.8, ge=0, le=1)
    certification_exact: float = Field(default=0.6, ge=0, le=1)
    certification_sessions_in_a_row: int = Field(default=1, ge=1, le=10)
    certification_valid_days: int = Field(default=365, ge=1, le=3650)
    # The bar for calling Krippendorff's alpha reliable, judged by the low end of its 95%
    # bootstrap interval (Krippendorff: .800), and the band for tentative conclusions (.667).
    reliability_minimum: float = Field(default=0.800, ge=0, le=1)
    reliability_tentative: float = Field(default=0.667, ge=0, le=1)
    # Feedback to teachers: how long a shared link works; whether a share includes the levels,
    # look-fors and tallies unless the observer says otherwise (walk-throughs are often
    # non-evaluative); the prompts of the teacher's reflection ("|" between prompts); after how
    # many days a link nobody opened is listed on the principal's start page; whether exports
    # carry the text of teachers' reflections (their times always).
    feedback_link_days: int = Field(default=30, ge=1, le=365)
    feedback_scores_default: bool = False
    feedback_reflection_prompts: str = (
        "What in this feedback matches what you noticed in the lesson?"
        "|What will you try next, and how will you know it worked?"
    )
    feedback_unopened_days: int = Field(default=7, ge=1, le=90)
    export_reflections: bool = False
    # E-mail for feedback links. No host: nothing is e-mailed, the observer copies the link.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "walkthrough@localhost"
    # The address people reach this server at, for links in e-mail (default: the address of
    # the request that shared it).
    public_url: str | None = None
    # Addresses of the reverse proxies / load balancers whose X-Forwarded-For and
    # X-Forwarded-Proto are believed (comma-separated IPs or CIDR ranges). Never "*": any
    # client could then choose the address that sign-in throttling counts.
    trusted_proxies: str = "127.0.0.1"

    @model_validator(mode="after")
    def _no_wildcard_proxies(self) -> "Settings":
        if "*" in self.trusted_proxies:
            raise ConfigError(
                "WALKTHROUGH_TRUSTED_PROXIES may not be '*': list the addresses of your load "
                "balancers (e.g. 10.0.0.0/24), or any client could fake its address."
            )
        return self

    @model_validator(mode="after")
    def _known_timezone(self) -> "Settings":
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"WALKTHROUGH_TIMEZONE={self.timezone!r} is not a time zone: use a name from the "
                "IANA database, e.g. America/Chicago or Europe/London."
            ) from None
        return self

    @model_validator(mode="after")
    def _production_needs_explicit_secrets(self) -> "Settings":
        if self.env == "production" and not self.secret_key:
            raise ConfigError(
                "WALKTHROUGH_SECRET_KEY must be set when WALKTHROUGH_ENV=production "
                "(e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self

    @property
    def cookies_secure(self) -> bool:
        """Secure cookies by default in production, opt-in elsewhere (local http)."""
        if self.secure_cookies is None:
            return self.env == "production"
        return self.secure_cookies

    def resolved_secret_key(self) -> str:
        """The signing key: the configured one, or one generated once and kept under ./data/."""
        if self.secret_key:
            return self.secret_key
        key_file = DATA_DIR / "secret_key"
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        try:
            # "x" mode: when several workers start at once, exactly one writes the key.
            with key_file.open("x") as fh:
                fh.write(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        except FileExistsError:
            pass
        return key_file.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own and pass them to create_app)."""
    return Settings()
