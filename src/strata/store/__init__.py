"""Durable state: SQLite (WAL) with schema migrations written as code."""

from __future__ import annotations

from strata.store.sqlite import Database, Migration

__all__ = ["Database", "Migration"]
