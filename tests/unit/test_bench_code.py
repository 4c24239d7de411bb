"""bench/code.py keeps HumanEval's hidden tests to itself: the requests carry the prompt only,
and the hidden tests score a solution in the sandbox (the canonical one passes, a wrong one
fails)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from strata.features.tools.sandbox import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.code import body, hidden_pass

ITEM: dict[str, Any] = {
    "task_id": "HumanEval/0",
    "prompt": 'def double(x):\n    """Twice x.\n    >>> double(2)\n    4\n    """\n',
    "entry_point": "double",
    "canonical_solution": "    return 2 * x  # CANONICAL\n",
    "test": "def check(candidate):\n    assert candidate(21) == 42  # HIDDEN\n",
}


def test_requests_carry_the_prompt_and_never_the_hidden_tests() -> None:
    for sent in (body(ITEM, "small", 512), body(ITEM, "small", 512, max_attempts=3)):
        text = json.dumps(sent)
        assert "double(2)" in text  # the docstring's example is the task's own
        assert "HIDDEN" not in text and "CANONICAL" not in text and "check(" not in text
    looped = body(ITEM, "big", 512, max_attempts=3)
    assert looped["model"] == "code"
    assert looped["strata"] == {"code": {"model": "big", "max_attempts": 3}}  # no tests
    assert looped["messages"] == body(ITEM, "big", 512)["messages"]  # same first request


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_hidden_tests_score_in_the_sandbox() -> None:
    sandbox = Sandbox()
    assert hidden_pass(sandbox, ITEM, "def double(x):\n    return 2 * x")
    assert not hidden_pass(sandbox, ITEM, "def double(x):\n    return 4")  # passes double(2)
    assert not hidden_pass(sandbox, ITEM, "")
