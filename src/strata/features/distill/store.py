"""What the distill feature keeps, per tenant: every closed-set routed turn (an
*observation*: the request text, who answered, what it answered), the training label each
earned (the big tier's answer, or the user's correction through feedback), and every
specialist trained (its weights, held-out accuracy and threshold; ``active`` marks the one
serving), and the open-ended turns exemplars come from (``exemplar_store``). One SQLite file,
``$STRATA_HOME/distill.db``, or the distill schema of the PostgreSQL database.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from strata.core.storage import Migration, open_repository
from strata.features.distill.head import LinearHead
from strata.features.distill.labels import LabelSet

MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE tasks (
            tenant TEXT NOT NULL,
            task TEXT NOT NULL,
            route TEXT NOT NULL,
            labels TEXT NOT NULL,
            field TEXT NOT NULL,
            plain INTEGER NOT NULL,
            PRIMARY KEY (tenant, task)
        );
        CREATE TABLE observations (
            response_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            task TEXT NOT NULL,
            text TEXT NOT NULL,
            answer TEXT,
            tier TEXT NOT NULL,
            label TEXT,
            source TEXT,
            vector BLOB,
            created REAL NOT NULL
        );
        CREATE INDEX observations_task ON observations (tenant, task, created);
        CREATE TABLE specialists (
            id INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            task TEXT NOT NULL,
            examples INTEGER NOT NULL,
            trained INTEGER NOT NULL,
            holdout INTEGER NOT NULL,
            accuracy REAL NOT NULL,
            previous_accuracy REAL,
            threshold REAL NOT NULL,
            active INTEGER NOT NULL,
            head TEXT,
            weights BLOB,
            created REAL NOT NULL
        );
        CREATE INDEX specialists_task ON specialists (tenant, task, id);
        """,
    ),
    # Users' labels at each training (a retrain trigger of their own), and the whole report.
    Migration(
        2,
        """
        ALTER TABLE specialists ADD COLUMN gold INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE specialists ADD COLUMN report TEXT;
        """,
    ),
    # Open-ended turns that are (or, given a thumbs-up, may become) exemplars: see exemplar_store.
    Migration(
        3,
        """
        CREATE TABLE exemplars (
            response_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            prompt TEXT NOT NULL,
            answer TEXT NOT NULL,
            tier TEXT NOT NULL,
            confidence REAL,
            kept INTEGER NOT NULL,
            source TEXT,
            vector BLOB,
            created REAL NOT NULL
        );
        CREATE INDEX exemplars_tenant ON exemplars (tenant, kept, created);
        """,
    ),
]


TRAINED = "trained"  # the notice a new active specialist sends to other replicas


@dataclass
class Example:
    """A labelled observation; ``gold`` when the label is a user's, and then
    ``route_right`` says whether the route's models (small or big tier, whichever answered)
    got it right (None: a specialist answered)."""

    response_id: str
    text: str
    label: str
    vector: npt.NDArray[np.float32] | None
    gold: bool = False
    route_right: bool | None = None
    created: float = 0.0


@dataclass
class Trained:
    """A specialist as stored: its head and how it did on held-out examples."""

    tenant: str
    task: str
    version: int
    head: LinearHead
    threshold: float
    accuracy: float
    holdout: int
    trained: int
    created: float
    trained_through: float  # the newest example it saw


class DistillStore:
    def __init__(self, path: Path | str) -> None:
        self.db = open_repository(path, "distill", MIGRATIONS)

    # ---- tasks and observations ----

    def observe(
        self,
        tenant: str,
        route: str,
        task: str,
        labels: LabelSet,
        response_id: str,
        text: str,
        answer: str | None,
        tier: str,
        label: str | None,
        vector: npt.NDArray[np.float32] | None,
    ) -> None:
        blob = None if vector is None else np.asarray(vector, np.float32).tobytes()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (tenant, task, route, json.dumps(labels.labels), labels.field, int(labels.plain)),
            )
            conn.execute(
                "INSERT INTO observations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (response_id) DO UPDATE SET tenant = excluded.tenant,"
                " task = excluded.task, text = excluded.text, answer = excluded.answer,"
                " tier = excluded.tier, label = excluded.label, source = excluded.source,"
                " vector = excluded.vector, created = excluded.created",
                (
                    response_id,
                    tenant,
                    task,
                    text,
                    answer,
                    tier,
                    label,
                    "big" if label is not None else None,
                    blob,
                    time.time(),
                ),
            )

    def observation(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        rows = self.db.query(
            "SELECT * FROM observations WHERE tenant = ? AND response_id = ?",
            (tenant, response_id),
        )
        return dict(rows[0]) if rows else None

    def relabel(self, response_id: str, label: str | None, source: str | None) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE observations SET label = ?, source = ? WHERE response_id = ?",
                (label, source, response_id),
            )

    def task(self, tenant: str, task: str) -> tuple[str, LabelSet] | None:
        rows = self.db.query("SELECT * FROM tasks WHERE tenant = ? AND task = ?", (tenant, task))
        if not rows:
            return None
        row = rows[0]
        labels = LabelSet(tuple(json.loads(row["labels"])), row["field"], bool(row["plain"]))
        return str(row["route"]), labels

    def tasks(self, tenant: str, route: str | None = None) -> list[str]:
        sql, params = "SELECT task FROM tasks WHERE tenant = ?", [tenant]
        if route is not None:
            sql, params = sql + " AND route = ?", [tenant, route]
        return [str(r["task"]) for r in self.db.query(sql + " ORDER BY task", params)]

    def labelled_count(self, tenant: str, task: str) -> int:
        rows = self.db.query(
            "SELECT COUNT(*) AS n FROM observations"
            " WHERE tenant = ? AND task = ? AND label IS NOT NULL",
            (tenant, task),
        )
        return int(rows[0]["n"])

    def examples(self, tenant: str, task: str) -> list[Example]:
        rows = self.db.query(
            "SELECT response_id, text, label, vector, source, tier, answer, created"
            " FROM observations"
            " WHERE tenant = ? AND task = ? AND label IS NOT NULL ORDER BY created",
            (tenant, task),
        )
        out = []
        for r in rows:
            gold = r["source"] == "feedback"
            out.append(
                Example(
                    r["response_id"],
                    r["text"],
                    r["label"],
                    None if r["vector"] is None else np.frombuffer(r["vector"], dtype=np.float32),
                    gold,
                    r["answer"] == r["label"] if gold and r["tier"] != "specialist" else None,
                    float(r["created"]),
                )
            )
        return out

    def gold_count(self, tenant: str, task: str) -> int:
        rows = self.db.query(
            "SELECT COUNT(*) AS n FROM observations"
            " WHERE tenant = ? AND task = ? AND label IS NOT NULL AND source = 'feedback'",
            (tenant, task),
        )
        return int(rows[0]["n"])

    def save_vectors(self, pairs: list[tuple[str, npt.NDArray[np.float32]]]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE observations SET vector = ? WHERE response_id = ?",
                [(np.asarray(v, np.float32).tobytes(), rid) for rid, v in pairs],
            )

    def traffic(self, tenant: str, task: str, recent: int) -> dict[str, Any]:
        """How many turns each tier answered, overall and over the last ``recent``."""
        out: dict[str, Any] = {}
        for scope, limit in (("all", None), ("recent", recent)):
            rows = self.db.query(
                "SELECT tier, COUNT(*) AS n FROM (SELECT tier FROM observations"
                " WHERE tenant = ? AND task = ? ORDER BY created DESC"
                + (" LIMIT ?" if limit is not None else "")
                + ") AS picked GROUP BY tier",
                (tenant, task) if limit is None else (tenant, task, limit),
            )
            out[scope] = {str(r["tier"]): int(r["n"]) for r in rows}
        return out

    # ---- specialists ----

    def record_training(
        self, tenant: str, task: str, examples: int, report: dict[str, Any], head: LinearHead
    ) -> int:
        """Store one training run; ``report["replaced"]`` makes it the active specialist."""
        weights = np.concatenate([head.weights.ravel(), head.bias]).astype(np.float64)
        meta = {
            "labels": head.labels,
            "temperature": head.temperature,
            "dim": head.weights.shape[0],
        }
        with self.db.transaction() as conn:
            if report["replaced"]:
                conn.execute(
                    "UPDATE specialists SET active = 0 WHERE tenant = ? AND task = ?",
                    (tenant, task),
                )
            row = conn.execute(
                "INSERT INTO specialists (tenant, task, examples, trained, holdout, accuracy,"
                " previous_accuracy, threshold, active, head, weights, created, gold, report)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    tenant,
                    task,
                    examples,
                    report["trained"],
                    report["holdout"],
                    report["accuracy"],
                    report.get("previous_accuracy"),
                    report["threshold"],
                    int(report["replaced"]),
                    json.dumps(meta) if report["replaced"] else None,
                    weights.tobytes() if report["replaced"] else None,
                    time.time(),
                    report.get("gold", 0),
                    json.dumps(report),
                ),
            ).fetchone()
            if report["replaced"]:
                self.db.notify(conn, TRAINED, json.dumps([tenant, task]))
            return int(row[0])

    def last_training(self, tenant: str, task: str) -> tuple[int, int]:
        """Labelled examples and users' labels when the task was last trained."""
        rows = self.db.query(
            "SELECT examples, gold FROM specialists WHERE tenant = ? AND task = ?"
            " ORDER BY id DESC LIMIT 1",
            (tenant, task),
        )
        return (int(rows[0]["examples"]), int(rows[0]["gold"])) if rows else (0, 0)

    def active(self) -> list[Trained]:
        rows = self.db.query("SELECT * FROM specialists WHERE active = 1 ORDER BY id")
        out = []
        for r in rows:
            meta = json.loads(r["head"])
            flat = np.frombuffer(r["weights"], dtype=np.float64)
            dim, classes = int(meta["dim"]), len(meta["labels"])
            head = LinearHead(
                list(meta["labels"]),
                flat[: dim * classes].reshape(dim, classes).copy(),
                flat[dim * classes :].copy(),
                float(meta["temperature"]),
            )
            out.append(
                Trained(
                    r["tenant"],
                    r["task"],
                    int(r["id"]),
                    head,
                    float(r["threshold"]),
                    float(r["accuracy"]),
                    int(r["holdout"]),
                    int(r["trained"]),
                    float(r["created"]),
                    float(json.loads(r["report"] or "{}").get("trained_through", r["created"])),
                )
            )
        return out

    def trainings(self, tenant: str, task: str) -> int:
        rows = self.db.query(
            "SELECT COUNT(*) AS n FROM specialists WHERE tenant = ? AND task = ?", (tenant, task)
        )
        return int(rows[0]["n"])

    def close(self) -> None:
        self.db.close()
