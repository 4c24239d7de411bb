"""bench/routing.py's product route: evaluated items are never calibration items, specialists
learn from the big tier's answers on recurring label sets only, and the route's accounting
keeps a specialist's answers at every cascade threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import _routing_product as product
from bench.routing import held_apart

from strata.features.distill.settings import DistillSettings
from strata.features.routing import calibrate as cal
from strata.features.routing.outcomes import load_items, to_item

TOPICS = ["World", "Sports", "Business", "Sci/Tech"]
TEXTS = {
    "World": "the president met foreign ministers at the summit on the border war",
    "Sports": "the striker scored twice as the team won the league final",
    "Business": "shares fell as the bank reported lower quarterly profit and revenue",
    "Sci/Tech": "researchers released new software for the chip and the space probe",
}


def write_tasks(folder: Path, n: int) -> None:
    folder.mkdir()
    news = [
        {
            "id": f"news/{i}",
            "question": f"{TEXTS[TOPICS[i % 4]]} {i}",
            "choices": TOPICS,
            "answer": "ABCD"[i % 4],
        }
        for i in range(n)
    ]
    quiz = [
        {
            "id": f"quiz/{i}",
            "question": f"question {i}?",
            "choices": [f"x{i}", f"y{i}"],
            "answer": "A",
        }
        for i in range(n)
    ]
    for name, rows in (("news.dev.jsonl", news), ("quiz.dev.jsonl", quiz)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_evaluated_items_start_past_the_calibration_items(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_tasks(data, 30)
    calib = load_items(data, 20, 0)
    evaluated = load_items(data, 16, 0, after=held_apart(data, data, calib))
    assert len(evaluated) == 16
    assert not {i.id for i in calib} & {i.id for i in evaluated}
    assert evaluated == load_items(data, 16, 0, after=held_apart(data, data, calib))
    # another folder: its own sample from the start
    assert held_apart(data, tmp_path / "other", calib) is None


def test_specialists_learn_recurring_label_sets_from_the_big_tier_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_tasks(data, 80)
    items = load_items(data, 160, 0)
    # the big tier is right on news, and calls every quiz item "B" (wrong)
    big = {i.id: i.answer if i.task == "news" else "B" for i in items}
    settings = DistillSettings(embedder="hash", min_examples=8)
    specialists, embedder = product.train_specialists(items, big, settings)
    assert list(specialists) == [tuple(TOPICS)]  # each quiz item brings its own choices
    fresh = to_item(
        {"id": "news/new", "question": TEXTS["Sports"], "choices": TOPICS, "answer": "B"}, "news"
    )
    answer = product.ask(specialists, embedder, fresh)
    assert answer is not None and answer.right and answer.seconds > 0
    quiz = to_item({"id": "q", "question": "q?", "choices": ["a", "b"], "answer": "A"}, "quiz")
    assert product.ask(specialists, embedder, quiz) is None


def outcome(i: int, small_ok: bool, big_ok: bool) -> cal.Outcome:
    return cal.Outcome(f"o{i}", {}, [], small_ok, big_ok, 1e-5, 4e-5)


@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0])
def test_a_specialists_answer_stands_at_every_cascade_threshold(threshold: float) -> None:
    evaluation = [outcome(0, False, True), outcome(1, False, True), outcome(2, True, True)]
    answers = [product.Answer(True, 0.9, True, 0.001), None, None]  # it answers item 0 right
    route = product.product_route(
        evaluation, answers, [0.1, 0.2, 0.9], [False] * 3, threshold, ["answer_prob"], 0.05
    )
    escalated = (threshold > 0.2) + (threshold > 0.9)
    assert route["big_share"] == pytest.approx(escalated / 3)
    assert route["specialist_share"] == pytest.approx(1 / 3)
    # small alone 1/3, big 1: the specialist alone already closes half the gap
    assert route["acc"] == pytest.approx((2 + (threshold > 0.2)) / 3)
    assert route["cpt"]["50"] == 0.0 and route["apgr"] > 0.5
