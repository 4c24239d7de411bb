"""A throwaway PostgreSQL cluster for the store contract tests (``scripts/postgres.sh``):
started once per test session, on first use, and stopped at its end; each test gets a fresh
database in it (``CREATE DATABASE`` is a file copy of ``template1``, about 10 ms).

Without PostgreSQL the script installs Debian's package. If that still fails, the postgres
half of the contract tests is skipped on a developer's machine, and fails under CI
(``CI=true``): CI must prove both engines."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


class Cluster:
    def __init__(self, folder: str, url: str) -> None:
        self.folder = folder
        self.url = url  # the maintenance database, "postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://strata@/{name}?host={self.folder}"

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def stop(self) -> None:
        subprocess.run(["sh", str(SCRIPT), "stop", self.folder], check=False, timeout=60)


def start_cluster(durable: bool = False) -> Cluster:
    """A running cluster, or a skip (a failure under CI) saying why there is none."""
    args = ["sh", str(SCRIPT), "start", *(["--durable"] if durable else [])]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/postgres.sh did not run: {exc}")
    if done.returncode != 0:
        _unavailable(f"scripts/postgres.sh failed: {done.stderr.strip()[-2000:]}")
    folder, url = done.stdout.split()[-2:]
    return Cluster(folder, url)


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI: {why}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {why}")
