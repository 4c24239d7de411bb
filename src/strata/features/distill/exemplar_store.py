"""The exemplars' table (``exemplars`` in the distill repository, migration 3): one row per
open-ended routed turn, per tenant. ``kept`` rows are exemplars (a confident big-tier answer,
or any answer a user gave a thumbs-up or corrected); the others are candidates that feedback
may still promote. Both kinds are bounded per tenant (``exemplars_max`` each, the oldest go).

Vectors (the prompt's embedding) are written when known: at once when the small tier was
offered exemplars (the prompt was embedded then), else by a background job, so no answer
waits for an embedding. Only rows with a vector can be picked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from strata.core.storage import Repository

CHANGED = "exemplars"  # the notice other replicas reload a tenant's exemplars on


@dataclass
class Row:
    response_id: str
    tenant: str
    prompt: str
    answer: str
    vector: npt.NDArray[np.float32] | None


class ExemplarStore:
    def __init__(self, db: Repository) -> None:
        self.db = db

    def record(
        self,
        tenant: str,
        response_id: str,
        prompt: str,
        answer: str,
        tier: str,
        confidence: float | None,
        kept: bool,
        vector: npt.NDArray[np.float32] | None,
        bound: int,
    ) -> None:
        """One open-ended turn; the oldest rows of its kind beyond ``bound`` go."""
        blob = None if vector is None else np.asarray(vector, np.float32).tobytes()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO exemplars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (response_id) DO NOTHING",
                (
                    response_id,
                    tenant,
                    prompt,
                    answer,
                    tier,
                    confidence,
                    int(kept),
                    "confident" if kept else None,
                    blob,
                    time.time(),
                ),
            )
            self._prune(conn, tenant, kept, bound)
            if kept:
                self.db.notify(conn, CHANGED, tenant)

    def _prune(self, conn: Any, tenant: str, kept: bool, bound: int) -> None:
        conn.execute(
            "DELETE FROM exemplars WHERE tenant = ? AND kept = ? AND response_id NOT IN"
            " (SELECT response_id FROM exemplars WHERE tenant = ? AND kept = ?"
            " ORDER BY created DESC, response_id DESC LIMIT ?)",
            (tenant, int(kept), tenant, int(kept), bound),
        )

    def judge(
        self, tenant: str, response_id: str, kept: bool, answer: str | None, bound: int
    ) -> bool:
        """A user's verdict: keep the row (with their corrected ``answer``, if any) or drop
        it from the exemplars. False when the turn is not one of the tenant's rows."""
        with self.db.transaction() as conn:
            found = conn.execute(
                "SELECT kept FROM exemplars WHERE tenant = ? AND response_id = ?",
                (tenant, response_id),
            ).fetchone()
            if found is None:
                return False
            conn.execute(
                "UPDATE exemplars SET kept = ?, source = 'feedback',"
                " answer = COALESCE(?, answer) WHERE tenant = ? AND response_id = ?",
                (int(kept), answer, tenant, response_id),
            )
            if kept:
                self._prune(conn, tenant, True, bound)
            self.db.notify(conn, CHANGED, tenant)
        return True

    def save_vector(self, response_id: str, vector: npt.NDArray[np.float32]) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE exemplars SET vector = ? WHERE response_id = ?",
                (np.asarray(vector, np.float32).tobytes(), response_id),
            )

    def row(self, tenant: str, response_id: str) -> Row | None:
        rows = self.db.query(
            "SELECT response_id, tenant, prompt, answer, vector FROM exemplars"
            " WHERE tenant = ? AND response_id = ?",
            (tenant, response_id),
        )
        return _row(rows[0]) if rows else None

    def kept(self, tenant: str) -> list[Row]:
        """The tenant's exemplars, oldest first."""
        rows = self.db.query(
            "SELECT response_id, tenant, prompt, answer, vector FROM exemplars"
            " WHERE tenant = ? AND kept = 1 ORDER BY created, response_id",
            (tenant,),
        )
        return [_row(r) for r in rows]

    def counts(self, tenant: str) -> dict[str, int]:
        rows = self.db.query(
            "SELECT kept, COUNT(*) AS n FROM exemplars WHERE tenant = ? GROUP BY kept", (tenant,)
        )
        found = {int(r["kept"]): int(r["n"]) for r in rows}
        return {"kept": found.get(1, 0), "candidates": found.get(0, 0)}


def _row(r: Any) -> Row:
    data = dict(r)
    vector = data["vector"]
    return Row(
        str(data["response_id"]),
        str(data["tenant"]),
        str(data["prompt"]),
        str(data["answer"]),
        None if vector is None else np.frombuffer(bytes(vector), dtype=np.float32),
    )
