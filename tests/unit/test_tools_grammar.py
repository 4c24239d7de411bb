"""Tool schemas → grammars: every schema a client may send compiles (checked by llama.cpp's
own grammar parser), the grammar accepts the calls it should and refuses the rest, and only
a schema that is not JSON schema is a 400 naming the tool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strata.core.errors import InvalidRequest
from strata.core.tools.gbnf import gbnf_literal, schema_to_gbnf
from strata.core.tools.grammar import (
    TOOL_CALL_OPEN,
    ToolSpec,
    normalize_schema,
    plan_tool_decoding,
    tool_call_grammar,
    tool_spec,
    tool_specs,
)
from strata.features.tools.bfcl import openai_tools, reference_calls
from tests.unit.tools_helpers import GrammarProbe, small_vocab

BFCL = Path(__file__).resolve().parents[3] / "shared" / "data" / "tools" / "bfcl.dev.jsonl"
if not BFCL.exists():
    BFCL = Path("/work/shared/data/tools/bfcl.dev.jsonl")


@pytest.fixture(scope="module")
def probe() -> GrammarProbe:
    return GrammarProbe(small_vocab())


def bfcl_items() -> list[dict[str, Any]]:
    if not BFCL.exists():
        pytest.skip(f"BFCL data not found at {BFCL}")
    return [json.loads(line) for line in BFCL.read_text().splitlines() if line.strip()]


def fn(name: str, parameters: Any, description: str = "") -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "description": description}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def call(name: str, arguments: dict[str, Any]) -> str:
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


WEATHER = fn(
    "get_weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
        },
        "required": ["city"],
    },
)

# Schemas clients really send; each must compile and accept the sample argument objects.
TRICKY: list[tuple[str, Any, list[dict[str, Any]]]] = [
    ("untyped", {"properties": {"x": {"description": "anything"}}}, [{"x": [1, {"a": None}]}]),
    ("any", {"type": "dict", "properties": {"x": {"type": "any"}}}, [{"x": "s"}, {"x": 3}]),
    (
        "tuple-items-list",
        {
            "type": "object",
            "properties": {
                "p": {"type": "array", "items": [{"type": "number"}, {"type": "string"}]}
            },
        },
        [{"p": [1.5, "a"]}],
    ),
    (
        "tuple-prefix",
        {
            "type": "object",
            "properties": {
                "p": {
                    "type": "array",
                    "prefixItems": [{"type": "integer"}, {"type": "integer"}],
                    "items": False,
                }
            },
        },
        [{"p": [1, 2]}],
    ),
    (
        "gorilla-tuple",
        {"type": "dict", "properties": {"c": {"type": "tuple", "items": {"type": "float"}}}},
        [{"c": [1.0, -2.5e-3]}],
    ),
    ("gorilla-float", {"type": "dict", "properties": {"f": {"type": "float"}}}, [{"f": 0.25}]),
    (
        "nested",
        {
            "type": "object",
            "properties": {
                "a": {
                    "type": "object",
                    "properties": {
                        "b": {
                            "type": "object",
                            "properties": {"c": {"type": "boolean"}},
                            "required": ["c"],
                        }
                    },
                }
            },
        },
        [{"a": {"b": {"c": True}}}, {"a": {}}],
    ),
    (
        "anyOf",
        {
            "type": "object",
            "properties": {
                "v": {
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]
                }
            },
        },
        [{"v": "s"}, {"v": [1, 2]}],
    ),
    (
        "type-list",
        {"type": "object", "properties": {"v": {"type": ["string", "null"]}}},
        [{"v": None}],
    ),
    (
        "nullable",
        {"type": "object", "properties": {"v": {"type": "integer", "nullable": True}}},
        [{"v": None}],
    ),
    (
        "additional-schema",
        {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "integer"},
        },
        [{"a": "x", "extra": 3}, {"zz": 1}],
    ),
    ("additional-true", {"type": "object", "additionalProperties": True}, [{"k": [1]}]),
    ("free-object", {"type": "object"}, [{"any": {"thing": 1}}, {}]),
    ("no-parameters", None, [{}]),
    ("empty-parameters", {}, [{}, {"a": 1}]),
    (
        "allOf",
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "integer"}}},
            ]
        },
        [{"a": "x", "b": 1}],
    ),
    (
        "anyOf-required",
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
        },
        [{"a": "x"}, {"b": "y"}],
    ),
    (
        "ref-recursive",
        {
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/node"}},
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "v": {"type": "integer"},
                        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                    },
                }
            },
        },
        [{"tree": {"v": 1, "kids": [{"v": 2, "kids": []}]}}],
    ),
    (
        "remote-ref",
        {"type": "object", "properties": {"r": {"$ref": "https://example.com/s.json"}}},
        [{"r": 5}],
    ),
    (
        "weird-names",
        {
            "type": "object",
            "properties": {
                'q"uote': {"type": "string"},
                "back\\slash": {"enum": ["a\\b", 'c"d', "é\n"]},
            },
        },
        [{'q"uote': "x", "back\\slash": "a\\b"}, {"back\\slash": "é\n"}],
    ),
    (
        "const",
        {"type": "object", "properties": {"k": {"const": {"fixed": [1, 2]}}}},
        [{"k": {"fixed": [1, 2]}}],
    ),
    (
        "bounds",
        {
            "type": "object",
            "properties": {
                "s": {"type": "string", "minLength": 2, "maxLength": 3},
                "l": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
            },
        },
        [{"s": "ab", "l": [1]}, {"s": "abc", "l": [1, 2]}],
    ),
    (
        "draft3-required",
        {"type": "object", "properties": {"a": {"type": "string", "required": True}}},
        [{"a": "x"}],
    ),
    (
        "java-types",
        {"type": "HashMap", "properties": {"s": {"type": "String"}, "n": {"type": "long"}}},
        [{"s": "x", "n": 5}],
    ),
    (
        "pattern-ignored",
        {
            "type": "object",
            "properties": {"d": {"type": "string", "pattern": "^[0-9]+$", "format": "date"}},
        },
        [{"d": "x"}],
    ),
]


@pytest.mark.parametrize(("label", "parameters", "samples"), TRICKY, ids=[t[0] for t in TRICKY])
def test_every_schema_compiles_and_accepts_its_instances(
    probe: GrammarProbe, label: str, parameters: Any, samples: list[dict[str, Any]]
) -> None:
    specs = tool_specs([fn("f", parameters)])
    grammar = tool_call_grammar(specs)
    assert probe.compiles(grammar), grammar
    for sample in samples:
        assert probe.accepts(grammar, call("f", sample)), (label, sample, grammar)


REFUSED = [
    ({"city": "Paris", "unit": "kelvin"}, "enum"),
    ({"unit": "celsius"}, "missing required"),
    ({"city": "Paris", "country": "FR"}, "undeclared key"),
    ({"city": 3}, "wrong type"),
    ({"city": "Paris", "days": 1.5}, "float for integer"),
]


@pytest.mark.parametrize(("arguments", "why"), REFUSED, ids=[r[1] for r in REFUSED])
def test_the_grammar_refuses_arguments_outside_the_schema(
    probe: GrammarProbe, arguments: dict[str, Any], why: str
) -> None:
    grammar = tool_call_grammar(tool_specs([WEATHER]))
    assert not probe.accepts(grammar, call("get_weather", arguments)), why


def test_calls_single_parallel_continuation_and_names(probe: GrammarProbe) -> None:
    other = fn("get_time", {"type": "object", "properties": {"tz": {"type": "string"}}})
    specs = tool_specs([WEATHER, other])
    one = call("get_weather", {"city": "Paris", "unit": "celsius"})
    two = one + "\n" + call("get_time", {"tz": "UTC"})
    parallel = tool_call_grammar(specs)
    single = tool_call_grammar(specs, parallel=False)
    assert probe.accepts(parallel, one) and probe.accepts(parallel, two)
    assert probe.accepts(single, one) and not probe.accepts(single, two)
    assert not probe.accepts(parallel, call("get_news", {}))
    assert not probe.accepts(parallel, "Sure! " + one)
    rest = tool_call_grammar(specs, after_open=True)
    assert probe.accepts(rest, two.removeprefix(TOOL_CALL_OPEN))
    # optional keys may be skipped in any position, declared order kept
    assert probe.accepts(parallel, call("get_weather", {"city": "P", "days": 2}))
    assert not probe.accepts(parallel, call("get_weather", {"days": 2, "city": "P"}))


def test_decoding_plans_follow_tool_choice(probe: GrammarProbe) -> None:
    specs = tool_specs([WEATHER, fn("noop", None)])
    auto = plan_tool_decoding(specs, "auto")
    assert auto.mode == "auto" and auto.grammar is None
    assert auto.stop == (TOOL_CALL_OPEN,) and auto.trigger == TOOL_CALL_OPEN
    assert auto.continuation and probe.compiles(auto.continuation)
    assert auto.grammar_lazy and probe.compiles(auto.grammar_lazy)
    required = plan_tool_decoding(specs, "required", parallel_tool_calls=False)
    assert required.grammar and probe.accepts(required.grammar, call("noop", {}))
    named = plan_tool_decoding(specs, {"type": "function", "function": {"name": "noop"}})
    assert named.grammar and not probe.accepts(named.grammar, call("get_weather", {"city": "P"}))
    none = plan_tool_decoding(specs, "none")
    assert none.mode == "none" and none.grammar is None and none.stop == (TOOL_CALL_OPEN,)
    assert plan_tool_decoding([], None).mode == "none"
    with pytest.raises(InvalidRequest) as exc:
        plan_tool_decoding(specs, {"type": "function", "function": {"name": "nope"}})
    assert exc.value.param == "tool_choice"
    with pytest.raises(InvalidRequest):
        plan_tool_decoding([], "required")
    with pytest.raises(InvalidRequest):
        plan_tool_decoding(specs, "sometimes")


INVALID = [
    ({"type": "banana"}, "unknown type"),
    ({"type": "object", "properties": 3}, "properties"),
    ({"type": "object", "properties": {"a": 5}}, "must be an object or a boolean"),
    ({"type": "object", "required": "a"}, "required"),
    ({"type": "object", "properties": {"a": {"enum": []}}}, "enum"),
    ({"type": "object", "properties": {"a": {"type": "array", "items": 5}}}, "items"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "points nowhere"),
    ({"type": "object", "properties": {"a": {"type": "string", "minLength": -1}}}, "minLength"),
    ({"type": "object", "anyOf": []}, "anyOf"),
    ({"type": "string"}, "must be an object"),
    ("not a schema", "must be an object or a boolean"),
]


@pytest.mark.parametrize(("parameters", "reason"), INVALID, ids=[i[1] for i in INVALID])
def test_only_invalid_schemas_are_a_400_naming_the_tool(parameters: Any, reason: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        tool_specs([WEATHER, fn("broken_tool", parameters)])
    assert exc.value.param == "tools"
    assert exc.value.status_code == 400
    assert "broken_tool" in exc.value.message and "tools[1]" in exc.value.message
    assert reason in exc.value.message


def test_malformed_tools_are_a_400() -> None:
    for tools in ([{"type": "function", "function": {}}], [{"type": "retrieval", "name": "x"}]):
        with pytest.raises(InvalidRequest):
            tool_specs(tools)
    with pytest.raises(InvalidRequest, match="two tools"):
        tool_specs([WEATHER, WEATHER])


def test_normalisation_keeps_what_the_model_reads() -> None:
    schema = normalize_schema(
        {
            "type": "dict",
            "properties": {"a": {"type": "float", "description": "metres", "default": 1}},
        }
    )
    assert schema == {
        "type": "object",
        "properties": {"a": {"type": "number", "description": "metres", "default": 1}},
    }
    spec = tool_spec(fn("f", None, "does f"))
    assert spec.openai()["function"]["parameters"] == {"type": "object", "properties": {}}
    assert isinstance(spec, ToolSpec) and spec.description == "does f"
    legacy = tool_spec({"name": "g", "parameters": {"type": "object"}})  # bare `functions` item
    assert legacy.name == "g"


def test_literals_escape_what_gbnf_would_misread(probe: GrammarProbe) -> None:
    assert gbnf_literal('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert probe.compiles(schema_to_gbnf({"enum": ["\x01", "tab\t", "ü"]}))


def bfcl_function_sets() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for item in bfcl_items():
        yield item["id"], item["functions"]


def test_every_bfcl_function_schema_compiles(probe: GrammarProbe) -> None:
    checked = 0
    for item_id, functions in bfcl_function_sets():
        for tools in (
            [{"type": "function", "function": f} for f in functions],
            openai_tools(functions),
        ):
            specs = tool_specs(tools)
            for grammar in (tool_call_grammar(specs), tool_call_grammar(specs, after_open=True)):
                assert probe.compiles(grammar), item_id
                checked += 1
    assert checked == 4 * 620


# parallel_multiple_94's answer key sorts strings with a function whose items are integers:
# the key contradicts the schema, and the grammar rightly refuses it.
SCHEMA_CONTRADICTS_KEY = {"parallel_multiple_94"}


def test_the_grammar_accepts_every_bfcl_reference_answer(probe: GrammarProbe) -> None:
    for item in bfcl_items():
        if item["category"] == "irrelevance" or item["id"] in SCHEMA_CONTRADICTS_KEY:
            continue
        grammar = tool_call_grammar(tool_specs(openai_tools(item["functions"])))
        text = "\n".join(call(n, a) for c in reference_calls(item) for n, a in c.items())
        assert probe.accepts(grammar, text), item["id"]
