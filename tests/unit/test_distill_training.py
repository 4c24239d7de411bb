"""Training one specialist: labels read from schemas, a calibrated head, the threshold, and
the rule that a new specialist replaces the serving one only if it does at least as well on
held-out examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from strata.core.embeddings import HashEmbedder
from strata.core.models.base import GenerationRequest, ResponseFormat, SamplingParams
from strata.core.turn import Turn
from strata.features.distill.head import fit_head, fit_temperature
from strata.features.distill.labels import LabelSet, label_set
from strata.features.distill.trainer import NEVER, Labelled, choose_threshold, split, train


def _turn(fmt: ResponseFormat, options: dict[str, object] | None = None) -> Turn:
    gen = GenerationRequest(
        kind="chat",
        messages=[{"role": "user", "content": "x"}],
        params=SamplingParams(response_format=fmt),
    )
    return Turn("auto", gen, options=dict(options or {}))


def test_label_sets_come_from_enum_schemas_or_declared_labels() -> None:
    obj = {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}}
    found = label_set(_turn(ResponseFormat("json_schema", obj)))
    assert found == LabelSet(("a", "b"), field="label")
    assert found.render("b") == '{"label": "b"}'
    assert found.parse('{"label": "b"}') == "b" and found.parse('{"label": "c"}') is None
    assert found.parse(" B ") == "b"  # a user's correction typed by hand
    top = label_set(_turn(ResponseFormat("json_schema", {"enum": ["x", "y", "z"]})))
    assert top == LabelSet(("x", "y", "z")) and top.parse('"y"') == "y"
    plain = label_set(_turn(ResponseFormat(), {"labels": ["yes", "no"]}))
    assert plain == LabelSet(("yes", "no"), plain=True) and plain.render("no") == "no"
    two_fields = {"type": "object", "properties": {"a": {"enum": ["1", "2"]}, "b": {}}}
    assert label_set(_turn(ResponseFormat("json_schema", two_fields))) is None
    assert label_set(_turn(ResponseFormat("json_object"))) is None
    assert label_set(_turn(ResponseFormat())) is None
    assert found.key("auto") != LabelSet(("a", "c"), field="label").key("auto")


def _data(n: int, noise: float, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    words = {
        "sports": "goal team match win",
        "weather": "rain wind storm cloud",
        "tech": "chip code app data",
    }
    embedder = HashEmbedder()
    labels = [list(words)[i % 3] for i in range(n)]
    texts = [
        f"{words[y]} {' '.join(rng.choice(['a', 'the', 'and', 'of'], 3))} {i}"
        for i, y in enumerate(labels)
    ]
    x = embedder.embed(texts)
    flipped = [list(words)[int(rng.integers(3))] if rng.random() < noise else y for y in labels]
    return [f"resp-{seed}-{i}" for i in range(n)], x, flipped


def test_head_learns_and_temperature_calibrates() -> None:
    _, x, y = _data(300, 0.3, 1)
    head = fit_head(x[:200], y[:200])
    head.temperature = fit_temperature(head, x[200:], y[200:])
    predicted, confidence = head.predict(x[200:])
    right = np.array([p == t for p, t in zip(predicted, y[200:], strict=True)])
    # 30% noisy labels: a calibrated head is not sure of everything
    assert 0.6 < right.mean() < 0.95
    assert abs(confidence.mean() - right.mean()) < 0.1


def test_threshold_is_where_held_out_answers_agree_often_enough() -> None:
    confidence = np.array([0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, True, True, False, True, False])
    assert choose_threshold(confidence, correct, 0.95, 0.0) == 0.8
    assert choose_threshold(confidence, correct, 0.95, 0.82) == 0.82  # the floor holds
    assert choose_threshold(confidence, ~correct, 0.95, 0.0) == NEVER
    assert choose_threshold(confidence[:4], correct[:4], 0.95, 0.0) == NEVER  # too few


def test_holdout_is_stable_and_disjoint() -> None:
    ids = [f"r{i}" for i in range(500)]
    parts = split(ids, 0.2)
    assert not (parts.holdout & parts.train).any() and (parts.calibrate <= parts.train).all()
    assert 0.12 < parts.holdout.mean() < 0.28
    again = split(ids[:250], 0.2)
    assert (again.holdout == parts.holdout[:250]).all()  # the same example, the same side


@pytest.mark.parametrize("noise", [0.0])
def test_a_new_specialist_replaces_the_old_only_if_at_least_as_good(noise: float) -> None:
    ids, x, y = _data(300, noise, 2)
    kwargs = {"holdout_share": 0.2, "target": 0.9, "floor": 0.5, "l2": 1e-3}
    good, first = train(Labelled(ids, x, y), current=None, **kwargs)
    assert first["replaced"] and first["previous_accuracy"] is None
    assert first["accuracy"] > 0.9 and first["threshold"] < NEVER
    # A worse candidate (its training labels shuffled, the held-out ones true) must not
    # replace the good one.
    held = split(ids, 0.2).holdout
    shuffled = list(np.random.default_rng(0).permutation(y))
    corrupted = [t if h else s for t, s, h in zip(y, shuffled, held, strict=True)]
    _, worse = train(Labelled(ids, x, corrupted), current=good, **kwargs)
    assert worse["previous_accuracy"] is not None
    assert worse["accuracy"] < worse["previous_accuracy"] and not worse["replaced"]
    assert held.sum() == worse["holdout"]
    # An equally good one does.
    _, same = train(Labelled(ids, x, y), current=good, **kwargs)
    assert same["replaced"] and same["accuracy"] >= same["previous_accuracy"]


def test_render_and_parse_round_trip() -> None:
    labels = LabelSet(("card_arrival", "lost_card"), field="intent")
    assert labels.parse(labels.render("lost_card")) == "lost_card"
    assert json.loads(labels.render("card_arrival")) == {"intent": "card_arrival"}


def test_feedback_event_reaches_every_subscriber_in_order() -> None:
    import asyncio

    from strata.core.events import FeedbackGiven, TurnEvents
    from strata.core.tenancy import LOCAL

    events = TurnEvents()
    seen: list[tuple[str, str]] = []

    async def first(event: FeedbackGiven) -> None:
        seen.append(("first", event.response_id))

    async def second(event: FeedbackGiven) -> None:
        seen.append(("second", event.response_id))

    events.on_feedback(first)
    events.on_feedback(second)
    asyncio.run(events.feedback(FeedbackGiven(LOCAL, "chatcmpl-1", 1)))
    assert seen == [("first", "chatcmpl-1"), ("second", "chatcmpl-1")]


def test_the_text_a_specialist_reads() -> None:
    from strata.features.distill.labels import request_text

    fmt = ResponseFormat("json_schema", {"enum": ["a", "b"]})
    asked = _turn(fmt)
    asked.sent = [{"role": "system", "content": "s"}, {"role": "user", "content": "as sent"}]
    assert request_text(asked) == "as sent"
    template = _turn(fmt, {"template": "t", "inputs": {"b": "two", "a": "one"}})
    template.sent = []
    assert request_text(template) == "a: one\nb: two"


def test_label_names_read_as_words() -> None:
    from strata.features.distill.labels import label_name

    assert label_name("card_arrival") == "card arrival"
    assert label_name("Sci/Tech") == "Sci/Tech"
    assert label_name("topUpFailed") == "top Up Failed"


def _names(labels: list[str]) -> np.ndarray:
    words = {"sports": "goal team match win", "tech": "chip code app data"}
    return HashEmbedder().embed([words.get(label, "rain wind storm cloud") for label in labels])


def test_users_labels_overrule_a_teacher_that_is_mostly_wrong() -> None:
    ids, x, truth = _data(240, 0.0, 3)
    labels = ["sports", "tech", "weather"]
    teacher = ["sports"] * len(ids)  # a big tier that answers one label whatever it is asked
    gold = np.zeros(len(ids), bool)
    gold[::7] = True  # 35 users' labels
    y = [t if g else b for t, b, g in zip(truth, teacher, gold, strict=True)]
    judged: list[bool | None] = [
        b == t if g else None for t, b, g in zip(truth, teacher, gold, strict=True)
    ]
    kwargs = {"holdout_share": 0.2, "target": 0.95, "floor": 0.6, "l2": 1e-3}
    head, report = train(
        Labelled(ids, x, y, gold, judged, _names(labels), labels), current=None, **kwargs
    )
    assert report["source"] == "feedback"
    assert report["feedback_users_accuracy"] > report["teacher_users_accuracy"]
    assert report["route_accuracy"] < 0.5 and report["threshold"] < NEVER
    predicted, confidence = head.predict(x)
    answered = confidence >= report["threshold"]
    right = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
    assert answered.mean() > 0.5 and right[answered].mean() > 0.9
    # Without users' labels the teacher is all there is: copied, and judged by agreement.
    copied, alone = train(
        Labelled(ids, x, teacher, names=_names(labels), name_labels=labels),
        current=None,
        **kwargs,
    )
    assert alone["source"] == "teacher" and "route_accuracy" not in alone
    # Users' labels then swap the copy out, though it agrees with the big tier more.
    _, swap = train(
        Labelled(ids, x, y, gold, judged, _names(labels), labels), current=copied, **kwargs
    )
    assert swap["swap_judged_on"] == "users" and swap["replaced"]
    assert swap["accuracy"] < swap["previous_accuracy"]


def test_a_right_teacher_keeps_teaching_when_users_agree() -> None:
    ids, x, truth = _data(240, 0.0, 4)
    labels = ["sports", "tech", "weather"]
    gold = np.zeros(len(ids), bool)
    gold[::7] = True
    judged: list[bool | None] = [True if g else None for g in gold]
    _, report = train(
        Labelled(ids, x, truth, gold, judged, _names(labels), labels),
        current=None,
        holdout_share=0.2,
        target=0.95,
        floor=0.6,
        l2=1e-3,
    )
    assert report["source"] == "teacher" and report["threshold"] < NEVER
    assert report["route_accuracy"] > 0.9 and report["replaced"]
