"""bench/tools.py's scoring, end to end through the HTTP API on the scripted fake model: a
right call passes, a wrong one fails, irrelevance passes only without a call, and text that
still holds a call counts against parsed_share."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from strata.core.engine import Engine
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, fake, fake_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.tools import score, tried_to_call

FUNCTIONS = [
    {
        "name": "math.add",
        "description": "Add two numbers",
        "parameters": {
            "type": "dict",
            "properties": {"a": {"type": "integer"}, "b": {"type": "float"}},
            "required": ["a", "b"],
        },
    }
]


def item(category: str, truth: list[dict[str, object]]) -> dict[str, object]:
    return {
        "id": f"{category}_0",
        "category": category,
        "messages": [{"role": "user", "content": "add 1 and 2"}],
        "functions": FUNCTIONS,
        "ground_truth": truth,
    }


def call(a: int, b: int) -> str:
    return f'<tool_call>\n{{"name": "math_add", "arguments": {{"a": {a}, "b": {b}}}}}\n</tool_call>'


def test_score_through_the_api(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.models["fake"] = settings.models["fake"].model_copy(update={"n_ctx": 1024})
    engine = Engine(settings)
    items = [
        item("simple_python", [{"math.add": {"a": [1], "b": [2.0]}}]),
        item("multiple", [{"math.add": {"a": [1], "b": [2.0]}}]),
        item("irrelevance", []),
        item("parallel", [{"math.add": {"a": [1], "b": [2.0]}}]),
    ]
    fake(engine).enqueue(call(1, 2), call(5, 2), "No tool fits.", '<tool_call>\n{"name": ')
    with (
        LiveServer(create_app(settings, engine)) as server,
        httpx.Client(base_url=server.root, timeout=30) as client,
    ):
        result = score("fake", client, items)
    assert result["simple_python"] == 1.0  # an int passes for a float
    assert result["multiple"] == 0.0
    assert result["irrelevance"] == 1.0
    assert result["parallel"] == 0.0
    assert result["parsed_share"] == round(2 / 3, 4)  # the broken tag tried and failed
    assert result["non_live_ast_mean"] == round(1 / 3, 4)


def test_tried_to_call() -> None:
    assert tried_to_call('```json\n{"name": "f", "arguments": {}}\n```')
    assert tried_to_call("<tool_call>\n{")
    assert not tried_to_call("The answer is 3.")
