"""Signals, answer reading, the logistic fit and calibration on a small synthetic set."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

import pytest

from strata.core.errors import ConfigError, InvalidRequest
from strata.core.models.base import TokenLogprob, TopLogprob
from strata.features.routing import calibrate as cal
from strata.features.routing.answers import canonical, choice_letter, final_number
from strata.features.routing.features import prompt_features
from strata.features.routing.logistic import fit_logistic
from strata.features.routing.signals import Attempt, create_signal, signal_names
from strata.features.routing.signals.consistency import agreement
from strata.features.routing.signals.logprobs import answer_span
from strata.features.routing.signals.verify import p_yes
from strata.features.routing.timeparse import parse_time


def toks(*pairs: tuple[str, float]) -> list[TokenLogprob]:
    return [TokenLogprob(t, lp) for t, lp in pairs]


class NoProbe:
    async def samples(self, k: int) -> list[str]:
        raise AssertionError("not needed")

    async def judge(self) -> list[TokenLogprob]:
        raise AssertionError("not needed")


def score(name: str, attempt: Attempt, **options: object) -> float:
    return asyncio.run(create_signal(name, **options).score(attempt, NoProbe()))


def test_builtins_are_registered() -> None:
    assert {
        "answer_prob",
        "sequence_prob",
        "min_token_prob",
        "verify",
        "consistency",
        "learned",
        "combined",
    } <= set(signal_names())
    with pytest.raises(ConfigError, match="unknown confidence signal"):
        create_signal("nope")


def test_answer_reading() -> None:
    assert choice_letter("B") == "B"
    assert choice_letter("(C) because") == "C"
    assert choice_letter("The answer is D.") == "D"
    assert choice_letter("E", "ABCD") is None
    assert final_number("3 + 4 = 7\nAnswer: $1,200.50") == "1200.5"
    assert final_number("so 12 apples, then 15.0") == "15"
    assert final_number("no digits") is None
    assert canonical("Answer: 12") == canonical("so the total is 12") == "12"


def test_logprob_signals() -> None:
    short = Attempt([], "B", toks((" ", -0.01), ("B", math.log(0.6))))
    assert score("answer_prob", short) == pytest.approx(0.6)
    worked = toks(
        ("Add", -0.1),
        (" 3", -0.2),
        (" and", -0.1),
        (" 4", -0.1),
        (" to", -0.3),
        (" get", -0.1),
        (" seven", -0.2),
        (".", -0.1),
        ("\nAnswer", -0.1),
        (":", 0.0),
        (" ", -0.01),
        ("7", math.log(0.5)),
    )
    attempt = Attempt([], "".join(t.token for t in worked), worked)
    assert [t.token for t in answer_span(worked)] == ["7"]
    assert score("answer_prob", attempt) == pytest.approx(0.5)
    mean = sum(t.logprob for t in worked) / len(worked)
    assert score("sequence_prob", attempt) == pytest.approx(math.exp(mean))
    lowest = sorted(t.logprob for t in worked)[:2]
    assert score("min_token_prob", attempt, lowest=2) == pytest.approx(math.exp(sum(lowest) / 2))
    assert score("answer_prob", Attempt([], "", [])) == 0.0


def test_answer_prob_reads_the_value_of_a_json_answer() -> None:
    """A schema dictates the braces and the key; the doubt is in the label's tokens."""
    labelled = toks(
        ('{"', -0.001), ("label", -0.001), ('":', -0.001), (' "', -0.01),
        ("Sci", math.log(0.4)), ("/", -0.01), ("Tech", math.log(0.9)), ('"}', -0.001),
    )  # fmt: skip
    assert [t.token for t in answer_span(labelled)] == ["Sci", "Tech"]
    attempt = Attempt([], "".join(t.token for t in labelled), labelled)
    assert score("answer_prob", attempt) == pytest.approx(
        math.exp((math.log(0.4) + math.log(0.9)) / 2)
    )
    number = toks(
        ('{"', -0.001),
        ("n", -0.001),
        ('":', -0.001),
        (" 4", math.log(0.3)),
        ("2", -0.1),
        ("}", 0.0),
    )
    assert [t.token for t in answer_span(number)] == [" 4", "2"]


def test_p_yes_and_agreement() -> None:
    first = TokenLogprob(
        "Yes",
        math.log(0.6),
        top=(
            TopLogprob("Yes", math.log(0.6)),
            TopLogprob("No", math.log(0.2)),
            TopLogprob(" no", math.log(0.1)),
        ),
    )
    assert p_yes([first]) == pytest.approx(0.6 / 0.9)
    assert p_yes([TokenLogprob("Maybe", -0.1)]) == 0.5
    assert agreement("Answer: 12", ["12", "Answer: 13", "it is 12", "x"]) == 0.5
    assert agreement("B", []) == 0.0


def test_logistic_fit_separates_and_round_trips() -> None:
    rng = random.Random(0)
    rows = [[rng.gauss(1 if i % 2 else -1, 0.5), rng.gauss(0, 1)] for i in range(200)]
    labels = [i % 2 for i in range(200)]
    model = fit_logistic(rows, labels)
    assert model.predict([1.5, 0.0]) > 0.9
    assert model.predict([-1.5, 0.0]) < 0.1
    assert abs(model.weights[0]) > 5 * abs(model.weights[1])
    again = type(model).from_json(model.to_json())
    assert again.predict([0.3, 0.2]) == model.predict([0.3, 0.2])


def test_learned_and_combined_need_or_use_a_fit() -> None:
    with pytest.raises(ConfigError, match="not trained"):
        create_signal("learned")
    mean = create_signal("combined", parts=["answer_prob", "sequence_prob"])
    attempt = Attempt([], "B", toks(("B", math.log(0.4))))
    assert asyncio.run(mean.score(attempt, NoProbe())) == pytest.approx(0.4)
    with pytest.raises(ConfigError):
        create_signal("combined", parts=["combined"])


def test_prompt_features_see_the_shape_not_the_answer() -> None:
    mc = [{"role": "user", "content": "Q?\n\nA. x\nB. y\nC. z\n\nAnswer with the letter."}]
    f = prompt_features(mc)
    assert f == prompt_features(mc)
    assert f[2] == 3.0 and f[3] == 1.0
    worked = [{"role": "user", "content": "Tom has 3 apples. Solve this step by step."}]
    assert prompt_features(worked)[5] == 1.0


def synthetic(n: int = 200, seed: int = 1) -> list[cal.Outcome]:
    """A small model right when its confidence is high; the big one right 80 % of the time."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        conf = rng.random()
        small_ok = rng.random() < conf
        out.append(
            cal.Outcome(
                id=str(i),
                scores={"answer_prob": conf, "verify": rng.random()},
                prompt=[rng.random(), float(i % 3)],
                small_ok=small_ok,
                big_ok=rng.random() < 0.8,
                small_cost=1.0,
                big_cost=4.0,
                extra_cost={"judge": 0.5},
            )
        )
    return out


def test_calibration_meets_its_target_on_the_data_it_saw() -> None:
    outcomes = synthetic()
    tuning, scores = cal.calibrate(
        outcomes, ["answer_prob", "verify"], target_quality=0.95, select=False
    )
    escalate = [s < tuning.thresholds[0] for s in scores]
    big = cal.accuracy(outcomes, [True] * len(outcomes))
    assert cal.accuracy(outcomes, escalate) >= 0.95 * big
    assert 0 < sum(escalate) < len(outcomes)
    assert tuning.signal == "combined" and tuning.curve
    # the informative signal gets far more weight than the noise
    weights = tuning.signal_options["model"]["weights"]
    assert abs(weights[0]) > 3 * abs(weights[1])
    # forward selection keeps the informative signal and drops the noise
    assert cal.select_parts(outcomes, ["verify", "answer_prob"]) == ["answer_prob"]
    # a looser target escalates less
    loose, _ = cal.calibrate(outcomes, ["answer_prob", "verify"], target_quality=0.85)
    assert loose.target["expected_big_share"] < tuning.target["expected_big_share"]
    # a budget: cost per request = 1.5 (small + judge) + 4 per escalation
    budget, _ = cal.calibrate(
        outcomes, ["answer_prob", "verify"], max_cost_per_1k=2500, select=False
    )
    point = next(p for p in budget.curve if p.threshold == budget.thresholds[0])
    assert point.cost_per_request * 1000 <= 2500
    assert point.cost_per_request == pytest.approx(1.5 + 4 * point.big_share)


def test_pgr_apgr_cpt_arithmetic() -> None:
    # small right on items 0 and 1, big on 1, 2 and 3: small 0.5, big 0.75
    cases = [(True, False), (True, True), (False, True), (False, True)]
    outcomes = [cal.Outcome(str(i), {}, [], s, b, 1.0, 2.0) for i, (s, b) in enumerate(cases)]
    perfect = [0.9, 0.8, 0.1, 0.2]  # the two the small model misses rank lowest
    points = cal.pgr_at_shares(perfect, outcomes)
    assert points == [(0.0, 0.0), (0.25, 1.0), (0.5, 2.0), (0.75, 2.0), (1.0, 1.0)]
    assert cal.cpt(points, 0.95) == 0.25
    # trapezoids: .25*(0+1)/2 + .25*(1+2)/2 + .25*(2+2)/2 + .25*(2+1)/2
    assert cal.apgr(points) == pytest.approx(0.125 + 0.375 + 0.5 + 0.375)
    worst = cal.pgr_at_shares([0.1, 0.2, 0.9, 0.8], outcomes)
    assert worst[1] == (0.25, -1.0)
    assert cal.cpt(worst, 0.5) == 1.0
    assert cal.apgr([(0.0, 0.0), (1.0, 1.0)]) == 0.5


def test_parse_time() -> None:
    assert parse_time("100.5", "since") == 100.5
    assert parse_time("1970-01-01T00:01:00", "since") == 60.0
    assert parse_time("2h", "since", now=10_000.0) == 10_000.0 - 7200
    assert parse_time(None, "since") is None
    with pytest.raises(InvalidRequest):
        parse_time("last tuesday", "until")


def test_local_price_comes_from_measured_compute(tmp_path: Path) -> None:
    from strata.core.engine import Engine, Timings
    from strata.core.models.base import Usage
    from strata.core.pricing import CostMeter
    from strata.core.settings import ModelSpec, Settings

    settings = Settings(
        home=tmp_path,
        bundled_models=False,
        models={"local": ModelSpec(backend="fake", n_threads=2)},
    )
    meter = CostMeter(Engine(settings), cpu_hour_usd=3.6)  # 2 threads: $0.002 per second
    meter.observe("local", Usage(100, 11), Timings(ttft_s=0.5, total_s=1.5), None)
    price = meter.price("local")  # 0.005 s per prompt token, 0.1 s per generated token
    assert price.input_per_mtok == pytest.approx(10.0)
    assert price.output_per_mtok == pytest.approx(200.0)
    # a first token delayed by loading the model is not a per-token rate
    meter.observe("local", Usage(10, 1), Timings(ttft_s=5.0, total_s=5.0), None)
    assert meter.price("local").input_per_mtok == pytest.approx(10.0)
    assert meter.cost("local", Usage(1000, 10)) == pytest.approx((1000 * 10 + 10 * 200) / 1e6)
