"""The ``database`` setting: SQLite files in home by default; a PostgreSQL URL from the
file, ``STRATA_DATABASE_URL`` / ``STRATA_DATABASE``, or ``--database``; anything else is a
clear configuration error."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.core.errors import ConfigError
from strata.core.settings import load_settings

URL = "postgresql://strata@/db?host=/tmp/x"


def test_default_is_a_sqlite_file_per_component(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert settings.database is None
    assert settings.store("ledger") == tmp_path / "ledger.db"


def test_url_from_env_file_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "strata.toml"
    config.write_text('database = "postgresql://file@/db"\n')
    assert load_settings(config).store("keys") == "postgresql://file@/db"
    monkeypatch.setenv("STRATA_DATABASE_URL", URL)
    assert load_settings(config).database == URL  # the environment beats the file
    monkeypatch.setenv("STRATA_DATABASE", "postgres://other@/db")
    assert load_settings().database == "postgres://other@/db"
    assert load_settings(database="postgresql://flag@/db").database == "postgresql://flag@/db"


def test_a_url_that_is_not_postgres_is_refused() -> None:
    with pytest.raises(ConfigError, match="PostgreSQL URL"):
        load_settings(database="sqlite:///x.db")
