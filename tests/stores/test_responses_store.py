"""The Responses API's stored conversations, once per engine: per tenant, replaced on a
second save of the same id, a missing or another tenant's id a 404."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.core.errors import NotFound
from strata.features.tools.responses import ResponseStore


def test_saved_per_tenant(database: Path | str) -> None:
    store = ResponseStore(database)
    said = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    store.save("a", "resp_1", said, {"id": "resp_1", "output": []})
    store.save("a", "resp_1", [*said, {"role": "user", "content": "more"}], {"id": "resp_1"})
    assert store.messages("a", "resp_1")[-1] == {"role": "user", "content": "more"}
    assert store.response("a", "resp_1") == {"id": "resp_1"}
    with pytest.raises(NotFound):
        store.messages("b", "resp_1")
    with pytest.raises(NotFound):
        store.response("a", "resp_2")
    store.close()
