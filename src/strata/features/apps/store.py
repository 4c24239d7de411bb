"""Application state (``apps.db``, or the ``strata_apps`` schema in PostgreSQL): brand
voices, custom templates, the responses strata gave (so feedback can refer to them) and the
feedback itself. Every row belongs to an owner (the caller's, ``strata.core.tenancy``);
lookups filter on it, so another key's rows are a 404."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.core.errors import InvalidRequest, NotFound
from strata.core.storage import Migration, open_repository

MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE voices (
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            profile TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            PRIMARY KEY (owner, id)
        );
        CREATE TABLE templates (
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            body TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (owner, name)
        );
        CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            model TEXT NOT NULL,
            template TEXT,
            voice TEXT,
            inputs TEXT,
            prompt TEXT NOT NULL,
            output TEXT NOT NULL,
            created REAL NOT NULL
        );
        CREATE INDEX responses_key ON responses (owner, template, voice);
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            response_id TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            rating INTEGER NOT NULL,
            edited TEXT,
            comment TEXT,
            created REAL NOT NULL
        );
        CREATE INDEX feedback_response ON feedback (response_id);
        """,
    ),
    # One tenancy rule for every feature (strata.core.tenancy): the anonymous owner "" is the
    # default tenant, and a key's owner id, the first 32 hex digits of its sha256, becomes its
    # tenant id, "k" + the first 24.
    Migration(
        2,
        """
        UPDATE voices SET owner = 'default' WHERE owner = '';
        UPDATE voices SET owner = 'k' || substr(owner, 1, 24) WHERE length(owner) = 32;
        UPDATE templates SET owner = 'default' WHERE owner = '';
        UPDATE templates SET owner = 'k' || substr(owner, 1, 24) WHERE length(owner) = 32;
        UPDATE responses SET owner = 'default' WHERE owner = '';
        UPDATE responses SET owner = 'k' || substr(owner, 1, 24) WHERE length(owner) = 32;
        UPDATE feedback SET owner = 'default' WHERE owner = '';
        UPDATE feedback SET owner = 'k' || substr(owner, 1, 24) WHERE length(owner) = 32;
        """,
    ),
]


@dataclass(frozen=True)
class Example:
    """An accepted answer: what was asked (template inputs, or the user's message) and the
    text the user accepted (their edit, or the answer they gave a thumbs-up)."""

    inputs: dict[str, Any] | None
    prompt: str
    output: str


class AppStore:
    def __init__(self, path: Path | str) -> None:
        self.db = open_repository(path, "apps", MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    # ---- voices ----

    def put_voice(self, owner: str, id: str | None, profile: dict[str, Any], create: bool) -> str:
        voice_id = id or f"voice-{uuid.uuid4().hex[:16]}"
        now = time.time()
        body = json.dumps(profile)
        with self.db.transaction() as conn:
            if create:
                cursor = conn.execute(
                    "INSERT INTO voices VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, id) DO NOTHING",
                    (owner, voice_id, body, now, now),
                )
                if cursor.rowcount == 0:
                    raise InvalidRequest(f"voice '{voice_id}' already exists", param="id")
            else:
                cursor = conn.execute(
                    "UPDATE voices SET profile = ?, updated = ? WHERE owner = ? AND id = ?",
                    (body, now, owner, voice_id),
                )
                if cursor.rowcount == 0:
                    raise NotFound(f"No voice '{voice_id}'.", param="voice")
        return voice_id

    def voice(self, owner: str, id: str) -> dict[str, Any]:
        rows = self.db.query("SELECT * FROM voices WHERE owner = ? AND id = ?", (owner, id))
        if not rows:
            raise NotFound(f"No voice '{id}'.", param="voice")
        profile: dict[str, Any] = json.loads(rows[0]["profile"])
        return profile

    def voices(self, owner: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self.db.query("SELECT * FROM voices WHERE owner = ? ORDER BY id", (owner,))
        return [(r["id"], json.loads(r["profile"])) for r in rows]

    def delete_voice(self, owner: str, id: str) -> None:
        with self.db.transaction() as conn:
            cursor = conn.execute("DELETE FROM voices WHERE owner = ? AND id = ?", (owner, id))
            if cursor.rowcount == 0:
                raise NotFound(f"No voice '{id}'.", param="voice")

    # ---- custom templates ----

    def put_template(self, owner: str, name: str, body: dict[str, Any]) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO templates VALUES (?, ?, ?, ?) ON CONFLICT (owner, name)"
                " DO UPDATE SET body = excluded.body",
                (owner, name, json.dumps(body), time.time()),
            )

    def templates(self, owner: str) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT body FROM templates WHERE owner = ? ORDER BY name", (owner,))
        return [json.loads(r["body"]) for r in rows]

    def delete_template(self, owner: str, name: str) -> None:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM templates WHERE owner = ? AND name = ?", (owner, name)
            )
            if cursor.rowcount == 0:
                raise NotFound(f"No custom template '{name}'.", param="name")

    # ---- responses and feedback ----

    def record(
        self,
        response_id: str,
        owner: str,
        model: str,
        template: str | None,
        voice: str | None,
        inputs: dict[str, Any] | None,
        prompt: str,
        output: str,
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, model = excluded.model,"
                " template = excluded.template, voice = excluded.voice,"
                " inputs = excluded.inputs, prompt = excluded.prompt, output = excluded.output,"
                " created = excluded.created",
                (
                    response_id,
                    owner,
                    model,
                    template,
                    voice,
                    json.dumps(inputs) if inputs is not None else None,
                    prompt,
                    output,
                    time.time(),
                ),
            )

    def response(self, owner: str, response_id: str) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT * FROM responses WHERE owner = ? AND id = ?", (owner, response_id)
        )
        if not rows:
            raise NotFound(f"No response '{response_id}'.", param="response_id")
        return dict(rows[0])

    def add_feedback(
        self, owner: str, response_id: str, rating: int, edited: str | None, comment: str | None
    ) -> int:
        self.response(owner, response_id)
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO feedback (owner, response_id, rating, edited, comment, created)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (owner, response_id, rating, edited, comment, time.time()),
            ).fetchone()
            return int(row[0])

    def examples(
        self, owner: str, template: str | None, voice: str | None, limit: int
    ) -> list[Example]:
        """Accepted answers for this template and voice, newest first: the latest feedback on
        a response counts, and it is accepted when it carries an edit or a thumbs-up."""
        if limit <= 0:
            return []
        rows = self.db.query(
            """
            SELECT r.inputs, r.prompt, r.output, f.rating, f.edited FROM responses r
            JOIN feedback f ON f.id = (
                SELECT id FROM feedback WHERE response_id = r.id ORDER BY id DESC LIMIT 1)
            WHERE r.owner = ? AND r.template IS NOT DISTINCT FROM ?
              AND r.voice IS NOT DISTINCT FROM ?
              AND (f.edited IS NOT NULL OR f.rating > 0)
            ORDER BY f.id DESC LIMIT ?
            """,
            (owner, template, voice, limit),
        )
        return [
            Example(
                json.loads(r["inputs"]) if r["inputs"] else None,
                r["prompt"],
                r["edited"] if r["edited"] is not None else r["output"],
            )
            for r in rows
        ]
