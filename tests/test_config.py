"""Settings: production refuses to start without an explicit secret key."""

import pytest

from app.config import ConfigError, Settings


def test_production_without_secret_key_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WALKTHROUGH_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="WALKTHROUGH_SECRET_KEY must be set"):
        Settings(env="production")


def test_production_cookies_are_secure_by_default() -> None:
    assert Settings(env="production", secret_key="s" * 40).cookies_secure is True
    assert Settings(env="development").cookies_secure is False
    assert Settings(env="development", secure_cookies=True).cookies_secure is True


def test_env_prefix_is_walkthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALKTHROUGH_DATABASE_URL", "sqlite:///elsewhere.db")
    assert Settings().database_url == "sqlite:///elsewhere.db"


def test_local_secret_key_is_generated_once_and_kept(
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WALKTHROUGH_SECRET_KEY", raising=False)
    first = Settings().resolved_secret_key()
    second = Settings().resolved_secret_key()
    assert first == second
    assert len(first) >= 40
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0


def test_cli_refuses_production_without_secret(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from app import cli
    from app.config import get_settings

    monkeypatch.setenv("WALKTHROUGH_ENV", "production")
    monkeypatch.delenv("WALKTHROUGH_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        assert cli.main(["migrate"]) == 2
    finally:
        get_settings.cache_clear()
    assert "WALKTHROUGH_SECRET_KEY must be set" in capsys.readouterr().err
