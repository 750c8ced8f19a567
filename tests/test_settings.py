"""Settings: defaults, BILLUMY_* environment, billumy.toml (BILLUMY_CONFIG) and validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from billumy.settings import DEFAULT_PERSONA_SYSTEM, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No BILLUMY_* variable and no billumy.toml leak in from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("BILLUMY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "billumy.toml"
    monkeypatch.setenv("BILLUMY_CONFIG", str(config))
    return config


def test_defaults() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8011
    assert settings.data_dir == Path("data")
    assert settings.database_url is None
    assert settings.api_key is None
    assert settings.default_model == "billumy"
    assert settings.keep_alive == "5m"
    assert settings.log_level == "info"
    assert settings.log_prompts is False
    assert settings.create_admin_key is True
    assert settings.max_body_bytes == 8 * 1024 * 1024
    billumy = settings.personas["billumy"]
    assert billumy.base == "smollm2-135m"
    assert billumy.system == DEFAULT_PERSONA_SYSTEM
    assert billumy.parameters == {"temperature": 0.7, "num_ctx": 2048}


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLUMY_PORT", "9123")
    monkeypatch.setenv("BILLUMY_HOST", "0.0.0.0")
    monkeypatch.setenv("BILLUMY_LOG_PROMPTS", "true")
    monkeypatch.setenv("BILLUMY_API_KEY", "bk_from-the-environment-123456")
    settings = Settings()
    assert settings.port == 9123
    assert settings.host == "0.0.0.0"
    assert settings.log_prompts is True
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "bk_from-the-environment-123456"
    # The key never shows up when settings are printed or logged.
    assert "bk_from-the-environment" not in repr(settings)
    assert "bk_from-the-environment" not in str(settings.model_dump())


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLUMY_PORT", "9123")
    assert Settings(port=9200).port == 9200


def test_bad_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLUMY_PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        Settings()
    monkeypatch.setenv("BILLUMY_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_toml_file_named_by_billumy_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere" / "custom.toml"
    config.parent.mkdir()
    config.write_text(
        """
port = 9300
log_level = "DEBUG"
keep_alive = "10m"
default_model = "analyst"

[personas.analyst]
system = "Você é um analista de dados."
parameters = { temperature = 0.2, num_ctx = 4096 }

[personas.analyst-gemma]
base = "gemma3-270m"
modelfile = "analyst.Modelfile"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("BILLUMY_CONFIG", str(config))
    settings = Settings()
    assert settings.port == 9300
    assert settings.log_level == "debug"
    assert settings.keep_alive == "10m"
    assert settings.default_model == "analyst"
    analyst = settings.personas["analyst"]
    assert analyst.system == "Você é um analista de dados."
    assert analyst.parameters == {"temperature": 0.2, "num_ctx": 4096}
    assert analyst.base == "smollm2-135m"
    assert settings.personas["analyst-gemma"].base == "gemma3-270m"
    assert settings.personas["analyst-gemma"].modelfile == "analyst.Modelfile"

    # The environment beats the file.
    monkeypatch.setenv("BILLUMY_PORT", "9301")
    assert Settings().port == 9301


def test_default_toml_is_billumy_toml_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BILLUMY_CONFIG")
    (tmp_path / "billumy.toml").write_text("port = 9400\n", encoding="utf-8")
    assert Settings().port == 9400


def test_missing_toml_file_is_fine(clean_env: Path) -> None:
    assert not clean_env.exists()
    assert Settings().port == 8011


def test_resolved_database_url(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).resolved_database_url == "sqlite+aiosqlite:///" + str(
        tmp_path / "billumy.db"
    )
    assert (
        Settings(database_url="sqlite:////var/lib/billumy/b.db").resolved_database_url
        == "sqlite+aiosqlite:////var/lib/billumy/b.db"
    )
    assert (
        Settings(database_url="sqlite:///relative.db").resolved_database_url
        == "sqlite+aiosqlite:///relative.db"
    )
    assert (
        Settings(database_url="postgresql://app:pw@db.internal:5432/billumy").resolved_database_url
        == "postgresql+asyncpg://app:pw@db.internal:5432/billumy"
    )
    assert (
        Settings(database_url="postgres://app@localhost/billumy").resolved_database_url
        == "postgresql+asyncpg://app@localhost/billumy"
    )
    # Already an async SQLAlchemy URL: used as given.
    assert (
        Settings(database_url="postgresql+asyncpg://app@h/db").resolved_database_url
        == "postgresql+asyncpg://app@h/db"
    )


@pytest.mark.parametrize("level", ["verbose", "trace", "", "warn"])
def test_invalid_log_level_is_rejected(level: str) -> None:
    with pytest.raises(ValidationError, match="log_level"):
        Settings(log_level=level)


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLUMY_LOG_LEVEL", "WARNING")
    assert Settings().log_level == "warning"


def test_empty_secrets_mean_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BILLUMY_API_KEY", "")
    monkeypatch.setenv("BILLUMY_REDIS_URL", "  ")
    monkeypatch.setenv("BILLUMY_CONFIG", str(tmp_path / "none.toml"))
    settings = Settings()
    assert settings.api_key is None and settings.redis_url is None
