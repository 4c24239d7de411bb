"""The whole product route for ``bench/routing.py``: specialists first, then the cascade.

Specialists are trained exactly as the distill feature trains them (``distill.trainer.train``
on the product's embedder, with the product's settings), from the calibration items' big-tier
answers only: never from gold labels, never from an evaluated item. A request is closed-set
for a specialist when its label set recurs, as a classification app declaring its labels in
``response_format`` would send it: here, a choice item whose list of choices (the labels) was
seen at least ``min_examples`` times among the calibration items (AG News's four topics; an
MMLU or ARC question brings its own choices, so none of those gets one).

On an evaluated item the route asks the specialist of its label set, if one serves: at or
above its own calibrated threshold the specialist's answer is final, below it the cascade goes
on (the small tier answers; the calibrated router decides whether the big tier answers
instead). Every threshold of the cascade's curve keeps the specialist's answers, so they rank
after every other request when the curve is traced to 100% big calls.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from strata.core.embeddings import Embedder, create_embedder
from strata.features.distill.head import LinearHead
from strata.features.distill.labels import label_name
from strata.features.distill.settings import DistillSettings
from strata.features.distill.trainer import NEVER, Labelled, train
from strata.features.routing import calibrate as cal
from strata.features.routing.outcomes import LETTERS, Item, Record


def choices(item: Item) -> tuple[str, ...] | None:
    """A choice item's labels: its choices' texts, in letter order."""
    if item.kind != "choice":
        return None
    lines = str(item.messages[-1]["content"]).split("\n")
    found = {line[0]: line[3:].strip() for line in lines if line[:3] in {f"{c}. " for c in LETTERS}}
    return tuple(found[c] for c in item.letters) if found else None


@dataclass
class Specialist:
    labels: tuple[str, ...]
    head: LinearHead
    threshold: float
    report: dict[str, Any]


@dataclass
class Answer:
    """What the specialist of an item's label set said (``taken``: at or above threshold)."""

    right: bool
    confidence: float
    taken: bool
    seconds: float


def text(item: Item) -> str:
    """What a specialist reads: the last user message as sent (distill.labels.request_text)."""
    return str(item.messages[-1]["content"])


def train_specialists(
    items: Sequence[Item], big_answers: dict[str, str | None], settings: DistillSettings
) -> tuple[dict[tuple[str, ...], Specialist], Embedder]:
    """``big_answers``: the big tier's answer (a letter) per item id, the only teacher."""
    embedder = create_embedder(settings)
    groups: dict[tuple[str, ...], list[tuple[Item, str]]] = defaultdict(list)
    for item in items:
        labels = choices(item)
        letter = big_answers.get(item.id)
        if labels is not None and letter is not None and letter in item.letters:
            groups[labels].append((item, labels[item.letters.index(letter)]))
    out: dict[tuple[str, ...], Specialist] = {}
    for labels, taught in groups.items():
        if len(taught) < settings.min_examples or len({y for _, y in taught}) < 2:
            continue
        x = embedder.embed([text(i) for i, _ in taught]).astype(np.float32)
        names = embedder.embed([label_name(label) for label in labels]).astype(np.float32)
        head, report = train(
            Labelled(
                [i.id for i, _ in taught],
                x,
                [y for _, y in taught],
                names=names,
                name_labels=list(labels),
            ),
            holdout_share=settings.holdout_share,
            target=settings.target_agreement,
            floor=settings.min_threshold,
            l2=settings.l2,
            current=None,
            versus_route=settings.versus_route,
        )
        if report["replaced"] and report["threshold"] < NEVER:
            out[labels] = Specialist(labels, head, report["threshold"], report)
    return out, embedder


def ask(
    specialists: dict[tuple[str, ...], Specialist], embedder: Embedder, item: Item
) -> Answer | None:
    """The specialist's answer as the product computes it (one embedding, one head), timed."""
    labels = choices(item)
    specialist = specialists.get(labels) if labels else None
    if specialist is None or labels is None:
        return None
    started = time.perf_counter()
    vector = embedder.embed([text(item)]).astype(np.float32)
    (label,), confidence = specialist.head.predict(vector)
    seconds = time.perf_counter() - started
    right = item.letters[labels.index(label)] == item.answer
    conf = float(confidence[0])
    return Answer(right, conf, conf >= specialist.threshold, seconds)


def product_route(
    evaluation: Sequence[cal.Outcome],
    answers: Sequence[Answer | None],
    scores: Sequence[float],
    skips: Sequence[bool],
    threshold: float,
    parts: Sequence[str],
    cpu_hour_usd: float,
) -> dict[str, Any]:
    """The route at the calibrated cascade threshold, and its curve over every threshold.
    ``scores``/``skips``: the cascade's score and prefilter per request (as fitted on the
    calibration items)."""
    n = len(evaluation)
    small = cal.accuracy(evaluation, [False] * n)
    big = cal.accuracy(evaluation, [True] * n)
    taken = [a is not None and a.taken for a in answers]
    cheap = [
        replace(o, small_ok=a.right) if t and a is not None else o
        for o, a, t in zip(evaluation, answers, taken, strict=True)
    ]
    escalate = [
        not t and (s < threshold or k) for s, k, t in zip(scores, skips, taken, strict=True)
    ]
    consult = [a.seconds * cpu_hour_usd / 3600 if a else 0.0 for a in answers]
    cost = sum(
        c + (0.0 if t else cal.request_cost(o, parts, e, k))
        for o, e, k, t, c in zip(evaluation, escalate, skips, taken, consult, strict=True)
    )
    acc = cal.accuracy(cheap, escalate)
    # a specialist's answer is kept at every cascade threshold: it ranks after the rest
    ranked = [
        2.0 + (a.confidence if a else 0) if t else (-1.0 if k else s)
        for s, k, t, a in zip(scores, skips, taken, answers, strict=True)
    ]
    pgrs = cal.pgr_at_shares(ranked, cheap, gap=(small, big))
    asked = [a for a in answers if a is not None]
    return {
        "acc": acc,
        "big_share": sum(escalate) / n,
        "specialist_share": sum(taken) / n,
        "specialist_acc": (
            sum(a.right for a in asked if a.taken) / max(1, sum(taken)) if asked else None
        ),
        "cost": cost / n * 1000,
        "pgr": (acc - small) / (big - small) if big != small else 1.0,
        "apgr": cal.apgr(pgrs),
        "cpt": {str(int(x * 100)): cal.cpt(pgrs, x) for x in (0.5, 0.8, 0.95)},
        "threshold": round(threshold, 4),
    }


def decision_latency(
    items: Sequence[Item],
    answers: Sequence[Answer | None],
    decide: Any,
    records: dict[str, Record],
) -> dict[str, float | None]:
    """Wall time of the routing decision per request (the specialist's embedding and head
    when one serves its label set, then the cascade's router and combiner, ``decide``),
    against the small tier's own wall time on the same request (cached)."""
    ms, ratios, consulted = [], [], []
    for item, answer in zip(items, answers, strict=True):
        started = time.perf_counter()
        decide(item)
        seconds = time.perf_counter() - started + (answer.seconds if answer else 0.0)
        ms.append(seconds * 1000)
        ratios.append(seconds / max(1e-9, records[item.id].small.wall_s))
        if answer is not None:
            consulted.append((seconds * 1000, ratios[-1]))
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(sorted(ms)[int(0.99 * (len(ms) - 1))], 3),
        "share_of_small_p50": round(statistics.median(ratios), 5),
        # the requests whose label set has a specialist: one prompt embedding each
        "with_specialist_p50_ms": round(statistics.median(c[0] for c in consulted), 3)
        if consulted
        else None,
        "with_specialist_share_of_small_p50": round(statistics.median(c[1] for c in consulted), 5)
        if consulted
        else None,
    }
