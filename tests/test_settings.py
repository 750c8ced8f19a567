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
    assert billumy.parameters == {"temperature": 0.7, "num_ctx": 2048, "num_predict": 512}


def test_four_batched_generations_by_default_one_context_without_batching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batching is on with four sequences; turned off, one context (four would each take
    every thread) unless num_parallel is set too."""
    settings = Settings()
    assert (settings.engine_batching, settings.num_parallel) == (True, 4)
    monkeypatch.setenv("BILLUMY_ENGINE_BATCHING", "false")
    assert Settings().num_parallel == 1
    monkeypatch.setenv("BILLUMY_NUM_PARALLEL", "3")
    assert (Settings().engine_batching, Settings().num_parallel) == (False, 3)


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


def test_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().workers == 1
    monkeypatch.setenv("BILLUMY_WORKERS", "4")
    assert Settings().workers == 4
    for bad in ("0", "65", "two"):
        monkeypatch.setenv("BILLUMY_WORKERS", bad)
        with pytest.raises(ValidationError, match="workers"):
            Settings()


def test_empty_secrets_mean_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BILLUMY_API_KEY", "")
    monkeypatch.setenv("BILLUMY_REDIS_URL", "  ")
    monkeypatch.setenv("BILLUMY_CONFIG", str(tmp_path / "none.toml"))
    settings = Settings()
    assert settings.api_key is None and settings.redis_url is None


def test_trusted_proxies_default_to_none() -> None:
    assert Settings().trusted_proxies == []


def test_trusted_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLUMY_TRUSTED_PROXIES", " 127.0.0.1, 10.0.0.0/8 ,fd00::/8,::1,")
    assert Settings().trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"]
    # A JSON list, like the environment's other lists, works too.
    monkeypatch.setenv("BILLUMY_TRUSTED_PROXIES", '["192.168.1.10", "172.16.0.0/12"]')
    assert Settings().trusted_proxies == ["192.168.1.10", "172.16.0.0/12"]
    # Empty (``BILLUMY_TRUSTED_PROXIES=`` in a .env file): none.
    monkeypatch.setenv("BILLUMY_TRUSTED_PROXIES", "")
    assert Settings().trusted_proxies == []
    # `billumy serve --trusted-proxies 127.0.0.1,10.0.0.0/8` passes the same string.
    options: dict[str, object] = {"trusted_proxies": "127.0.0.1,10.0.0.0/8"}
    assert Settings(**options).trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]  # type: ignore[arg-type]


def test_trusted_proxies_from_toml(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    clean_env.write_text('trusted_proxies = ["10.1.2.3", "2001:db8::/32"]\n', encoding="utf-8")
    assert Settings().trusted_proxies == ["10.1.2.3", "2001:db8::/32"]
    # The environment beats the file.
    monkeypatch.setenv("BILLUMY_TRUSTED_PROXIES", "127.0.0.1")
    assert Settings().trusted_proxies == ["127.0.0.1"]


@pytest.mark.parametrize(
    "value",
    [
        "nginx",  # names are not resolved: an address or a network only
        "*",  # trusting everyone is spelled 0.0.0.0/0,::/0 if really meant
        "10.0.0.5/8",  # host bits set: probably a typo
        "300.1.1.1",
        "127.0.0.1,,bad",
        "10.0.0.0/33",
    ],
)
def test_invalid_trusted_proxy_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BILLUMY_TRUSTED_PROXIES", value)
    with pytest.raises(ValidationError, match=r"(?s)trusted_proxies.*not an IP address or a CIDR"):
        Settings()


def test_trusted_proxies_that_are_not_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLUMY_TRUSTED_PROXIES", '["127.0.0.1"')
    with pytest.raises(ValidationError, match=r"(?s)trusted_proxies.*is not a JSON list"):
        Settings()


def test_insights_narrative(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    assert Settings().insights_narrative == "auto"
    clean_env.write_text("insights_narrative = true\n", encoding="utf-8")
    assert Settings().insights_narrative == "true"
    clean_env.write_text("insights_narrative = false\n", encoding="utf-8")
    assert Settings().insights_narrative == "false"
    monkeypatch.setenv("BILLUMY_INSIGHTS_NARRATIVE", "AUTO")
    assert Settings().insights_narrative == "auto"
    monkeypatch.setenv("BILLUMY_INSIGHTS_NARRATIVE", "on")
    assert Settings().insights_narrative == "true"
    monkeypatch.setenv("BILLUMY_INSIGHTS_NARRATIVE", "sometimes")
    with pytest.raises(ValidationError, match="auto, true or false"):
        Settings()
