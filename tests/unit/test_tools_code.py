"""The ``code`` route with the scripted fake model: a failing doctest is fed back and the
second attempt passes; only the examples it was given are checked; ``max_attempts`` bounds
the model calls; every call is billed; a refused request is a 4xx, never a 500."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strata.core.engine import Engine
from strata.core.models.fake import FakeBackend
from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from strata.features.tools.code import extract_code, prelude
from strata.features.tools.code_examples import checks_from_tests, examples_from_prompt
from tests.conftest import LiveServer, fake
from tests.unit.conftest import assert_error_body

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

TASK = '''Complete this function:
```python
def add(a, b):
    """Add two numbers.
    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
```'''
WRONG = "```python\ndef add(a, b):\n    return a * b + 1\n```"
RIGHT = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```"


def code_settings(tmp_path: Path, sandbox: bool = True, **limits: Any) -> Settings:
    tools: dict[str, Any] = {"sandbox": sandbox, "code": {"model": "coder"}, "limits": limits}
    models = {"coder": ModelSpec(backend="fake", n_ctx=4096)}
    extra: dict[str, Any] = {"tools": tools}  # a feature's section: not in CoreSettings' type
    return Settings(home=tmp_path / "home", bundled_models=False, models=models, **extra)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[httpx.Client, FakeBackend]]:
    settings = code_settings(tmp_path)
    engine = Engine(settings)
    with (
        LiveServer(create_app(settings, engine)) as server,
        httpx.Client(base_url=server.root, timeout=60) as client,
    ):
        yield client, fake(engine, "coder")


def ask(client: httpx.Client, options: dict[str, Any] | None = None, task: str = TASK) -> Any:
    body: dict[str, Any] = {"model": "code", "messages": [{"role": "user", "content": task}]}
    if options is not None:
        body["strata"] = {"code": options}
    return client.post("/v1/chat/completions", json=body)


@needs_bwrap
def test_a_failing_doctest_is_fed_back_and_the_second_attempt_passes(
    stack: tuple[httpx.Client, FakeBackend],
) -> None:
    client, model = stack
    model.enqueue(WRONG, RIGHT)
    response = ask(client)
    assert response.status_code == 200, response.text
    body = response.json()
    answer = body["choices"][0]["message"]["content"]
    assert answer == "```python\ndef add(a, b):\n    return a + b\n```"
    assert "code" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    report = body["strata"]["code"]
    assert report["passed"] is True and report["chosen"] == 2
    assert [a["passed"] for a in report["attempts"]] == [False, True]
    assert "returned 7" in report["attempts"][0]["error"]
    assert all(a["seconds"] > 0 for a in report["attempts"])
    # the retry saw its own answer and what failed: the example, and what came back
    retry = model.calls[1].messages or []
    assert retry[-2] == {"role": "assistant", "content": WRONG}
    assert "`add(2, 3)` should be `5`, but it returned `7`" in retry[-1]["content"]
    assert "add(-1, 1)" not in retry[-1]["content"]  # it passed: only failures go back
    # both model calls are billed to the turn: the usage is the sum of the two
    usage = body["usage"]
    assert usage["prompt_tokens"] > len(TASK.split()) and usage["completion_tokens"] > 10
    rows = client.get("/v1/usage/requests").json()["data"]
    assert rows[0]["model"] == "code" and rows[0]["answered_by"] == "coder"
    assert rows[0]["completion_tokens"] == usage["completion_tokens"]


@needs_bwrap
def test_only_the_examples_given_are_checked_never_hidden_tests(
    stack: tuple[httpx.Client, FakeBackend],
) -> None:
    client, model = stack
    # passes the docstring's examples, fails add(10, 10) == 20, which nobody gave the route
    model.enqueue("```python\ndef add(a, b):\n    return a + b if a < 5 else 0\n```", RIGHT)
    body = ask(client).json()
    assert body["strata"]["code"]["passed"] is True
    assert len(body["strata"]["code"]["attempts"]) == 1  # nothing made it retry
    assert len(model.calls) == 1
    assert "10" not in str(model.calls[0].messages)


@needs_bwrap
def test_user_tests_replace_the_examples(stack: tuple[httpx.Client, FakeBackend]) -> None:
    client, model = stack
    model.enqueue("```python\ndef add(a, b):\n    return a + b if a < 5 else 0\n```", RIGHT)
    body = ask(client, {"tests": ["assert add(10, 10) == 20"]}).json()
    report = body["strata"]["code"]
    assert report["checked_against"] == "tests" and report["chosen"] == 2
    assert "`add(10, 10)` should be `20`, but it returned `0`" in str(model.calls[1].messages)


@needs_bwrap
def test_max_attempts_bounds_the_model_calls(stack: tuple[httpx.Client, FakeBackend]) -> None:
    client, model = stack
    model.enqueue(WRONG, "no code at all", "```python\ndef add(a, b):\n    return 1/0\n```")
    body = ask(client, {"max_attempts": 3}).json()
    report = body["strata"]["code"]
    assert len(model.calls) == 3 and len(report["attempts"]) == 3
    assert report["passed"] is False
    assert report["attempts"][1]["error"] == "no Python code in the answer"
    assert "ZeroDivisionError" in report["attempts"][2]["error"]
    assert "ZeroDivisionError" not in str(model.calls[2].messages)  # fed back only after
    # the last call saw every earlier attempt and what was wrong with each
    history = [m["content"] for m in model.calls[2].messages or []][-4:]
    assert history[0] == WRONG and "returned `7`" in history[1]
    assert history[2] == "no code at all" and "has no Python code" in history[3]
    model.enqueue(WRONG)
    ask(client, {"max_attempts": 1})
    assert len(model.calls) == 4


@needs_bwrap
def test_an_endless_loop_is_stopped_and_reported(tmp_path: Path) -> None:
    settings = code_settings(tmp_path, wall_seconds=2)
    engine = Engine(settings)
    with (
        LiveServer(create_app(settings, engine)) as server,
        httpx.Client(base_url=server.root, timeout=60) as client,
    ):
        fake(engine, "coder").enqueue("```python\ndef add(a, b):\n    while True: pass\n```")
        report = ask(client, {"max_attempts": 1}).json()["strata"]["code"]
    assert report["attempts"][0]["timed_out"] is True
    assert "ran out of time" in report["attempts"][0]["error"]


def test_the_route_is_refused_while_the_sandbox_is_off(tmp_path: Path) -> None:
    settings = code_settings(tmp_path, sandbox=False)
    with (
        LiveServer(create_app(settings, Engine(settings))) as server,
        httpx.Client(base_url=server.root, timeout=60) as client,
    ):
        response = ask(client)
        assert response.status_code == 400
        assert "sandbox = true" in assert_error_body(response.json())["message"]
        assert "code" not in [m["id"] for m in client.get("/v1/models").json()["data"]]


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": "3"},
        {"tests": "assert add(1,"},
        {"tests": [3]},
        {"model": "nope"},
        {"bogus": 1},
    ],
)
def test_bad_options_are_a_4xx(tmp_path: Path, options: dict[str, Any]) -> None:
    settings = code_settings(tmp_path)
    with (
        LiveServer(create_app(settings, Engine(settings))) as server,
        httpx.Client(base_url=server.root, timeout=60) as client,
    ):
        response = ask(client, options)
        assert 400 <= response.status_code < 500, response.text  # never a 500
        assert_error_body(response.json())


def test_examples_are_read_in_the_shapes_humaneval_writes_them() -> None:
    prompt = '''def f(x, y=0):
    """
    >>> f(1)
    2
    >>> f(2) == 3
    f(3) ==> 4
    f(4) ➞ 5.
    f(5) should return 6
    f(6)   # returns "x"
    For x = 7, y = 1 the output should be 8
    Input: x = 9
    Output: 10
    f(11) is a nice call, and g(1) == 3 is not ours
    """'''
    checks = examples_from_prompt(prompt, "f")
    got = {(c.call, c.expected) for c in checks}
    assert got == {
        ("f(1)", "2"),
        ("f(2)", "3"),
        ("f(3)", "4"),
        ("f(4)", "5."),  # 5.0: equal to 5, as the example means
        ("f(5)", "6"),
        ("f(6)", '"x"'),
        ("f(x = 7, y = 1)", "8"),
        ("f(x = 9)", "10"),
    }


@needs_bwrap
def test_the_same_wrong_code_twice_is_called_out(stack: tuple[httpx.Client, FakeBackend]) -> None:
    client, model = stack
    model.enqueue(WRONG, WRONG, RIGHT)
    assert ask(client).json()["strata"]["code"]["chosen"] == 3
    assert "same code as your attempt 1" in str(model.calls[2].messages[-1])  # type: ignore[index]
    assert "same code" not in str(model.calls[1].messages)


def test_user_tests_split_into_checks_and_code_is_found() -> None:
    checks = checks_from_tests("x = 2\nassert f(x) == 4\nassert f(1) > 0")
    assert [(c.call, c.expected, c.statement) for c in checks] == [
        ("", "", True),
        ("f(x)", "4", False),
        ("", "", True),
    ]
    reply = "```python\ndef g():\n    pass\n```\ntext\n```python\ndef f(x):\n    return x\n```"
    assert extract_code(reply, "f") == "def f(x):\n    return x"
    assert extract_code("```python\ndef f(x):\n    return (x", "f") == "def f(x):\n    return (x"
    task = "import math\n\ndef h(x):\n    return x\n\ndef f(x):\n    '''doc'''\n"
    assert prelude(task, "f") == "import math\n\ndef h(x):\n    return x"
