"""The apps' and the distill feature's store contracts, once per engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from strata.core.errors import InvalidRequest, NotFound
from strata.features.apps.store import AppStore
from strata.features.distill.exemplar_store import ExemplarStore
from strata.features.distill.head import LinearHead
from strata.features.distill.labels import LabelSet
from strata.features.distill.runtime import Distill
from strata.features.distill.settings import DistillSettings
from strata.features.distill.store import DistillStore


def test_voices_and_templates(database: Path | str) -> None:
    store = AppStore(database)
    vid = store.put_voice("a", "brand", {"tone": "warm"}, create=True)
    with pytest.raises(InvalidRequest, match="already exists"):
        store.put_voice("a", "brand", {"tone": "cold"}, create=True)
    store.put_voice("b", "brand", {"tone": "b's own"}, create=True)  # another owner's id
    store.put_voice("a", vid, {"tone": "crisp"}, create=False)
    assert store.voice("a", vid) == {"tone": "crisp"}
    assert store.voices("b") == [("brand", {"tone": "b's own"})]
    with pytest.raises(NotFound):
        store.put_voice("a", "missing", {}, create=False)
    store.delete_voice("a", vid)
    with pytest.raises(NotFound):
        store.voice("a", vid)
    store.put_template("a", "t", {"name": "t", "v": 1})
    store.put_template("a", "t", {"name": "t", "v": 2})
    assert store.templates("a") == [{"name": "t", "v": 2}]
    store.delete_template("a", "t")
    with pytest.raises(NotFound):
        store.delete_template("a", "t")
    store.close()


def test_responses_feedback_and_examples(database: Path | str) -> None:
    store = AppStore(database)
    store.record("r1", "a", "m", "tpl", None, {"x": 1}, "p1", "o1")
    store.record("r2", "a", "m", "tpl", None, None, "p2", "o2")
    store.record("r3", "a", "m", None, None, None, "p3", "o3")
    store.record("r3", "a", "m", None, None, None, "p3", "o3 again")  # recorded twice
    assert store.response("a", "r3")["output"] == "o3 again"
    with pytest.raises(NotFound):
        store.response("b", "r1")
    first = store.add_feedback("a", "r1", 1, None, "good")
    second = store.add_feedback("a", "r2", -1, "fixed", None)
    assert second > first > 0
    store.add_feedback("a", "r3", 1, None, None)
    examples = store.examples("a", "tpl", None, 5)
    assert [(e.inputs, e.prompt, e.output) for e in examples] == [
        (None, "p2", "fixed"),
        ({"x": 1}, "p1", "o1"),
    ]
    store.add_feedback("a", "r1", -1, None, None)  # the latest feedback counts
    assert [e.prompt for e in store.examples("a", "tpl", None, 5)] == ["p2"]
    assert [e.output for e in store.examples("a", None, None, 5)] == ["o3 again"]
    assert store.examples("a", "tpl", None, 0) == []
    store.close()


def test_distill_observations_and_specialists(database: Path | str) -> None:
    store = DistillStore(database)
    labels = LabelSet(("pos", "neg"), "sentiment", False)
    vector = np.arange(4, dtype=np.float32)
    for i, tier in enumerate(("small", "big", "big")):
        label = "pos" if i != 1 else None
        store.observe("t", "route", "task", labels, f"r{i}", f"text {i}", "a", tier, label, vector)
    store.observe("t", "route", "task", labels, "r0", "text 0", "a", "small", "neg", None)
    assert store.task("t", "task") == ("route", labels)
    assert store.tasks("t") == ["task"] and store.tasks("t", route="other") == []
    assert store.labelled_count("t", "task") == 2
    store.relabel("r1", "neg", "feedback")
    assert store.observation("t", "r1")["source"] == "feedback"  # type: ignore[index]
    store.save_vectors([("r0", vector * 2)])
    examples = {e.response_id: e for e in store.examples("t", "task")}
    assert examples["r0"].label == "neg" and examples["r0"].vector is not None
    assert examples["r0"].vector.tolist() == [0.0, 2.0, 4.0, 6.0]
    # r1: the big tier answered "a", a user said "neg": a user's label the route got wrong
    assert examples["r1"].gold and examples["r1"].route_right is False
    assert not examples["r0"].gold and examples["r0"].route_right is None
    assert store.gold_count("t", "task") == 1
    traffic = store.traffic("t", "task", recent=1)
    assert traffic["all"] == {"small": 1, "big": 2} and sum(traffic["recent"].values()) == 1

    head = LinearHead(["pos", "neg"], np.ones((4, 2)), np.zeros(2), 1.5)
    report = {"trained": 3, "holdout": 1, "accuracy": 0.9, "threshold": 0.7, "replaced": True}
    first = store.record_training("t", "task", 3, report, head)
    second = store.record_training("t", "task", 4, {**report, "replaced": False, "gold": 1}, head)
    assert second > first
    assert store.last_training("t", "task") == (4, 1) and store.trainings("t", "task") == 2
    (active,) = store.active()
    assert active.version == first and active.head.labels == ["pos", "neg"]
    assert active.head.weights.tolist() == head.weights.tolist()
    assert active.threshold == 0.7 and active.head.temperature == 1.5
    store.close()


def test_a_specialist_trained_on_one_replica_serves_on_the_other(database: Path | str) -> None:
    if not str(database).startswith("postgresql://"):
        pytest.skip("one SQLite file has one serving process")
    trainer, other = (Distill(database, DistillSettings(), 0.05) for _ in range(2))
    head = LinearHead(["pos", "neg"], np.ones((4, 2)), np.zeros(2), 1.0)
    report = {"trained": 3, "holdout": 1, "accuracy": 0.9, "threshold": 0.6, "replaced": True}
    version = trainer.store.record_training("t", "task", 3, report, head)
    deadline = time.monotonic() + 0.1
    while ("t", "task") not in other.serving:
        assert time.monotonic() < deadline, "the other replica does not serve it"
        time.sleep(0.002)
    assert other.serving[("t", "task")].version == version
    for runtime in (trainer, other):
        runtime.store.close()


def test_exemplars_kept_judged_and_bounded(database: Path | str) -> None:
    store = DistillStore(database)
    exemplars = ExemplarStore(store.db)
    vector = np.arange(4, dtype=np.float32)
    exemplars.record("t", "r1", "p1", "a1", "big", 0.9, True, vector, bound=2)
    exemplars.record("t", "r1", "p1", "again", "big", 0.9, True, None, bound=2)  # once only
    exemplars.record("t", "r2", "p2", "a2", "small", None, False, None, bound=2)
    exemplars.record("u", "r3", "p3", "a3", "big", 0.95, True, None, bound=2)
    assert [(r.response_id, r.answer) for r in exemplars.kept("t")] == [("r1", "a1")]
    (kept,) = exemplars.kept("t")
    assert kept.vector is not None and kept.vector.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert exemplars.counts("t") == {"kept": 1, "candidates": 1}
    assert not exemplars.judge("t", "r3", True, None, bound=2)  # another tenant's turn
    assert exemplars.judge("t", "r2", True, "fixed", bound=2)  # a correction keeps it
    exemplars.save_vector("r2", vector * 2)
    row = exemplars.row("t", "r2")
    assert row is not None and row.answer == "fixed" and row.vector is not None
    assert exemplars.judge("t", "r1", False, None, bound=2)  # a thumbs-down drops it
    assert [r.response_id for r in exemplars.kept("t")] == ["r2"]
    for i in range(3):  # only the newest ``bound`` exemplars stay
        exemplars.record("t", f"n{i}", "p", "a", "big", 0.9, True, None, bound=2)
    assert [r.response_id for r in exemplars.kept("t")] == ["n1", "n2"]
    assert exemplars.counts("t") == {"kept": 2, "candidates": 1}
    store.close()


def test_an_exemplar_kept_on_one_replica_is_picked_on_the_other(database: Path | str) -> None:
    if not str(database).startswith("postgresql://"):
        pytest.skip("one SQLite file has one serving process")
    keeper, other = (Distill(database, DistillSettings(exemplars=True), 0.05) for _ in range(2))
    vector = np.ones(4, dtype=np.float32) / 2
    assert asyncio.run(other.exemplars._index("t")).ids == []  # loaded, and empty
    keeper.exemplars.store.record("t", "r1", "p", "a", "big", 0.9, True, vector, bound=5)
    deadline = time.monotonic() + 2  # the notice is near-instant; the machine may be busy
    while "t" in other.exemplars._indexes:  # the notice drops the stale index
        assert time.monotonic() < deadline, "the other replica kept its stale exemplars"
        time.sleep(0.002)
    assert asyncio.run(other.exemplars._index("t")).ids == ["r1"]
    for runtime in (keeper, other):
        runtime.store.close()
