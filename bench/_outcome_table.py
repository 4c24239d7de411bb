"""The committed outcome table: what both tiers did on each routing item, in one line.

Running the 0.5B and the 1.5B over a few thousand items costs hours on two cores; the raw
calls live in ``$STRATA_HOME/cache/bench-routing`` (not committed). This table is their
compact summary, committed in ``bench/caches/routing-outcomes/outcomes.jsonl``: item id and
task, each tier's answer and whether it was right, the small answer's signal confidences, the
calls' measured compute cost, and the model files (sha256 prefixes) that produced them, so a
fresh checkout can calibrate routes and train routers and specialists (``bench/routing.py``,
``bench/learned_router.py --from-table``) without running a model. Prompts are not stored:
they are read again from the task files by item id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT

from strata.features.routing import calibrate as cal
from strata.features.routing.features import prompt_features
from strata.features.routing.grading import predicted
from strata.features.routing.outcomes import Item, Record

TABLE = REPO_ROOT / "bench" / "caches" / "routing-outcomes" / "outcomes.jsonl"


def row(item: Item, outcome: cal.Outcome, record: Record, models: dict[str, str]) -> dict[str, Any]:
    return {
        "id": outcome.id,
        "task": item.task,
        "small_answer": predicted(item, record.small),
        "big_answer": predicted(item, record.big),
        "small_ok": outcome.small_ok,
        "big_ok": outcome.big_ok,
        "scores": {k: round(v, 5) for k, v in outcome.scores.items()},
        "small_cost": outcome.small_cost,
        "big_cost": outcome.big_cost,
        "extra_cost": outcome.extra_cost,
        "small_wall_s": record.small.wall_s,
        "models": models,
    }


def read(path: Path, models: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Rows by item id; with ``models``, only those the same model files produced."""
    if not path.exists():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {r["id"]: r for r in rows if models is None or r.get("models") == models}


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def to_outcome(r: dict[str, Any], item: Item) -> cal.Outcome:
    return cal.Outcome(
        r["id"],
        r["scores"],
        prompt_features(item.messages),
        r["small_ok"],
        r["big_ok"],
        r["small_cost"],
        r["big_cost"],
        r["extra_cost"],
    )
