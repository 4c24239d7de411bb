"""bench/flywheel.py's traffic: both file formats, even shares, a small file used whole, and
a seeded order in which a smaller run's items are a subset of a larger one's."""

from __future__ import annotations

import json
from pathlib import Path

from bench.flywheel import load_task, stream


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_both_formats_and_the_stream(tmp_path: Path) -> None:
    news = _write(
        tmp_path / "ag_news.dev.jsonl",
        [
            {
                "id": f"n{i}",
                "question": f"story {i}",
                "choices": ["World", "Sports"],
                "answer": "AB"[i % 2],
            }
            for i in range(50)
        ],
    )
    intents = _write(
        tmp_path / "banking77.dev.jsonl",
        [{"text": f"card {i}", "label": ["lost_card", "card_arrival"][i % 2]} for i in range(8)],
    )
    a, b = load_task(news), load_task(intents)
    assert a.labels == ["World", "Sports"] and a.items[1].gold == "Sports"
    assert b.labels == ["card_arrival", "lost_card"] and b.items[0].gold == "lost_card"
    ten = stream([a, b], 10, seed=3)
    assert sorted(i.task for i in ten).count("ag_news") == 5  # even shares
    thirty = stream([a, b], 30, seed=3)
    assert sum(i.task == "banking77" for i in thirty) == 8  # used whole, news fills in
    assert len({i.id for i in thirty}) == 30  # without replacement
    assert {i.id for i in ten} <= {i.id for i in thirty}
    assert stream([a, b], 30, seed=3) == thirty and stream([a, b], 30, seed=4) != thirty
