"""The distill feature's runtime: it watches closed-set routed turns, keeps what the big tier
answered (and what users corrected), trains specialists in the background, and answers as
the routes' first tier (``strata.core.protocols.Specialist``). Open-ended turns feed its
exemplars (``exemplars.ExemplarBank``) instead.

Specialists are per tenant: the key is (tenant, route + label set). A trained one is swapped
into ``self.serving`` by one assignment, so requests see the old or the new one, never a
mix, and no restart is needed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from strata.core.embeddings import Embedder, create_embedder
from strata.core.errors import NotFound
from strata.core.events import FeedbackGiven
from strata.core.protocols import SpecialistAnswer
from strata.core.turn import Turn, TurnCompleted
from strata.features.distill.exemplars import ExemplarBank
from strata.features.distill.head import LinearHead
from strata.features.distill.labels import LabelSet, label_name, label_set, request_text
from strata.features.distill.settings import DistillSettings
from strata.features.distill.store import TRAINED, DistillStore, Trained
from strata.features.distill.trainer import NEVER, Labelled, train

log = logging.getLogger("strata.features.distill")
RECENT = 100  # the "recent" window of the traffic shares
MAX_PENDING = 1000  # embeddings waiting for their turn to complete


@dataclass
class Serving:
    head: LinearHead
    threshold: float
    version: int
    trained_at: float  # examples that came later are ones it never saw


class Distill:
    def __init__(
        self, location: Path | str, settings: DistillSettings, cpu_hour_usd: float
    ) -> None:
        self.settings = settings
        self.cpu_hour_usd = cpu_hour_usd
        self.store = DistillStore(location)
        self.serving: dict[tuple[str, str], Serving] = self._stored()
        # Replicas on one PostgreSQL database: a specialist trained on one serves on all.
        self.store.db.listen(TRAINED, self._trained_somewhere)
        self._embedder: Embedder | None = None
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}  # response id → its embedding
        self._training: set[tuple[str, str]] = set()
        # examples that arrived while their task trained: checked again when it ends, so the
        # last ones are never left waiting for the next request
        self._stale: set[tuple[str, str]] = set()
        self._label_names: dict[str, tuple[npt.NDArray[np.float32], list[str]]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # Open-ended traffic: kept big-tier answers as the small tier's worked examples.
        self.exemplars = ExemplarBank(self.store.db, settings, lambda: self.embedder)

    def _stored(self) -> dict[tuple[str, str], Serving]:
        return {
            (t.tenant, t.task): Serving(t.head, t.threshold, t.version, t.trained_through)
            for t in self.store.active()
        }

    def _trained_somewhere(self, payload: str | None) -> None:
        """A replica (this one included) made a new specialist active: serve what the store
        has, swapped in by one assignment."""
        self.serving = self._stored()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = create_embedder(self.settings)
        return self._embedder

    # ---- the first tier ----

    async def answer(self, route: str, turn: Turn) -> SpecialistAnswer | None:
        labels = label_set(turn) if self.settings.enabled else None
        if labels is None:
            return None
        task = labels.key(route)
        serving = self.serving.get((turn.caller.tenant, task))
        if serving is None:
            return None
        started = time.perf_counter()
        vector = await asyncio.to_thread(self.embedder.embed, [request_text(turn)])
        predicted, confidence = serving.head.predict(vector)
        seconds = time.perf_counter() - started
        if len(self._vectors) > MAX_PENDING:  # turns that failed never collect theirs
            self._vectors.clear()
        self._vectors[turn.response_id] = vector[0]
        return SpecialistAnswer(
            name=task,
            text=labels.render(predicted[0]),
            confidence=float(confidence[0]),
            threshold=serving.threshold,
            cost=seconds * self.cpu_hour_usd / 3600,  # one thread for that long
            seconds=seconds,
        )

    # ---- learning from turns and feedback ----

    async def on_turn(self, event: TurnCompleted) -> None:
        turn, result = event.turn, event.result
        vector = self._vectors.pop(turn.response_id, None)
        route = result.report.get("route")
        labels = label_set(turn) if self.settings.enabled else None
        if route is None or labels is None or not result.choices:
            return
        answered = result.served_by
        last = route["tiers"][-1]["model"]
        tier = (
            "specialist"
            if answered.startswith("specialist:")
            else "big"
            if answered == last
            else "small"
        )
        answer = labels.parse(result.choices[0].text)
        label = answer if tier == "big" else None
        task, tenant = labels.key(turn.model), turn.caller.tenant
        await self.store.db.run(
            lambda: self.store.observe(
                tenant,
                turn.model,
                task,
                labels,
                turn.response_id,
                request_text(turn),
                answer,
                tier,
                label,
                vector,
            )
        )
        if label is not None:
            self._maybe_train(tenant, task)

    async def on_feedback(self, event: FeedbackGiven) -> None:
        """A correction becomes the example's label; a thumbs-up confirms the answer; a
        thumbs-down drops the big tier's label (it was wrong, and we do not know the right
        one)."""
        tenant = event.caller.tenant
        row = await self.store.db.run(self.store.observation, tenant, event.response_id)
        if row is None:
            return
        known = await self.store.db.run(self.store.task, tenant, row["task"])
        if known is None:
            return
        labels: LabelSet = known[1]
        label, source = row["label"], row["source"]
        if event.edited_text is not None:
            corrected = labels.parse(event.edited_text)
            if corrected is None:
                return
            label, source = corrected, "feedback"
        elif event.rating > 0 and row["answer"] is not None:
            label, source = row["answer"], "feedback"
        elif event.rating < 0 and source == "big":
            label, source = None, None
        else:
            return
        await self.store.db.run(self.store.relabel, event.response_id, label, source)
        if label is not None:
            self._maybe_train(tenant, row["task"])

    def _maybe_train(self, tenant: str, task: str) -> None:
        key = (tenant, task)
        if key in self._training:
            self._stale.add(key)
            return
        labelled = self.store.labelled_count(tenant, task)
        examples, gold = self.store.last_training(tenant, task)
        new_gold = self.store.gold_count(tenant, task) - gold
        if labelled < self.settings.min_examples or (
            labelled - examples < self.settings.retrain_every
            and new_gold < self.settings.retrain_every_feedback
        ):
            return
        self._training.add(key)

        async def run() -> None:
            try:
                await asyncio.to_thread(self.train, tenant, task)
            except Exception:  # a failed training leaves the serving specialist in place
                log.exception("training the specialist %s for %s failed", task, tenant)
            finally:
                self._training.discard(key)
                if key in self._stale:
                    self._stale.discard(key)
                    self._maybe_train(tenant, task)

        job = asyncio.ensure_future(run())
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    # ---- training ----

    def train(self, tenant: str, task: str) -> dict[str, Any]:
        """Train a specialist for one task now; swap it in if it does at least as well on
        the held-out examples as the one serving. Returns the report."""
        with self._locks.setdefault((tenant, task), threading.Lock()):
            examples = self.store.examples(tenant, task)
            report: dict[str, Any] = {"id": task, "examples": len(examples), "replaced": False}
            if len(examples) < self.settings.min_examples or len({e.label for e in examples}) < 2:
                report["reason"] = (
                    f"needs {self.settings.min_examples} labelled examples of 2+ labels"
                )
                return report
            missing = [e for e in examples if e.vector is None]
            if missing:
                fresh = self.embedder.embed([e.text for e in missing])
                for example, vector in zip(missing, fresh, strict=True):
                    example.vector = vector
                self.store.save_vectors(
                    [(e.response_id, v) for e, v in zip(missing, fresh, strict=True)]
                )
            vectors = np.stack([e.vector for e in examples if e.vector is not None])
            current = self.serving.get((tenant, task))
            names = self._names(tenant, task)
            started = time.perf_counter()
            head, trained = train(
                Labelled(
                    [e.response_id for e in examples],
                    vectors.astype(np.float32),
                    [e.label for e in examples],
                    np.array([e.gold for e in examples], dtype=bool),
                    [e.route_right for e in examples],
                    None if names is None else names[0],
                    [] if names is None else names[1],
                    np.array([e.created for e in examples]),
                ),
                holdout_share=self.settings.holdout_share,
                target=self.settings.target_agreement,
                floor=self.settings.min_threshold,
                l2=self.settings.l2,
                current=None if current is None else current.head,
                current_trained_at=None if current is None else current.trained_at,
                versus_route=self.settings.versus_route,
            )
            report.update(
                trained,
                seconds=round(time.perf_counter() - started, 3),
                trained_through=max(e.created for e in examples),
            )
            version = self.store.record_training(tenant, task, len(examples), report, head)
            report["version"] = version
            if report["replaced"]:
                self.serving[(tenant, task)] = Serving(
                    head, report["threshold"], version, report["trained_through"]
                )
            return report

    def _names(self, tenant: str, task: str) -> tuple[npt.NDArray[np.float32], list[str]] | None:
        """The task's label names, embedded once (one example per label)."""
        if task not in self._label_names:
            known = self.store.task(tenant, task)
            if known is None:
                return None
            labels = list(known[1].labels)
            vectors = self.embedder.embed([label_name(label) for label in labels])
            self._label_names[task] = (np.asarray(vectors, np.float32), labels)
        return self._label_names[task]

    async def distill(self, tenant: str, route: str) -> list[dict[str, Any]]:
        """``strata distill --route NAME``: train every specialist of the route now."""
        tasks = await self.store.db.run(self.store.tasks, tenant, route)
        if not tasks:
            raise NotFound(f"no closed-set traffic seen on route '{route}'", param="route")
        return [await asyncio.to_thread(self.train, tenant, task) for task in tasks]

    def listing(self, tenant: str) -> list[dict[str, Any]]:
        """What ``GET /v1/specialists`` shows: each task with its serving specialist."""
        active = {t.task: t for t in self.store.active() if t.tenant == tenant}
        out = []
        for task in self.store.tasks(tenant):
            known = self.store.task(tenant, task)
            if known is None:
                continue
            route, labels = known
            traffic = self.store.traffic(tenant, task, RECENT)
            trained: Trained | None = active.get(task)
            out.append(
                {
                    "id": task,
                    "object": "specialist",
                    "route": route,
                    "labels": len(labels.labels),
                    "examples": self.store.labelled_count(tenant, task),
                    "trainings": self.store.trainings(tenant, task),
                    "training": (tenant, task) in self._training,  # one is running now
                    "serving": trained is not None,
                    "version": trained.version if trained else None,
                    "accuracy_vs_big": round(trained.accuracy, 4) if trained else None,
                    "holdout": trained.holdout if trained else 0,
                    "threshold": _threshold(trained),
                    "answered_share": _share(traffic["all"]),
                    "answered_share_recent": _share(traffic["recent"]),
                    "traffic": traffic["all"],
                    "trained_at": trained.created if trained else None,
                }
            )
        return out

    async def drain(self) -> None:
        """Wait for background trainings and exemplar embeddings (tests; shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.exemplars.drain()

    async def shutdown(self) -> None:
        await self.drain()
        self.store.close()


def _share(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return round(counts.get("specialist", 0) / total, 4) if total else 0.0


def _threshold(trained: Trained | None) -> float | None:
    if trained is None:
        return None
    return None if trained.threshold >= NEVER else round(trained.threshold, 4)
