"""Model output → OpenAI tool calls, and OpenAI messages → the GGUF's own chat template."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from strata.core.errors import InvalidRequest
from strata.core.tools.grammar import tool_specs
from strata.core.tools.parsing import arguments_object, new_call_id, parse_tool_calls
from strata.core.tools.template import ToolPromptRenderer, template_messages
from tests.unit.tools_helpers import small_model_path

TOOLS = ["get_weather", "get_time"]


def ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"call_{next(counter)}"


def args(output: Any, i: int = 0) -> Any:
    return json.loads(output.tool_calls[i]["function"]["arguments"])


def test_native_tags_one_and_several() -> None:
    text = (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>'
    )
    out = parse_tool_calls(text, TOOLS, new_id=ids())
    assert out.source == "native" and out.content == "Let me check."
    assert out.tool_calls[0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert out.tool_calls[1]["function"]["name"] == "get_time" and args(out, 1) == {"tz": "CET"}


def test_native_tag_cut_off_by_max_tokens_still_parses_when_its_json_is_whole() -> None:
    out = parse_tool_calls('<tool_call>\n{"name": "get_time", "arguments": {}}', TOOLS)
    assert out.tool_calls and out.content is None
    broken = parse_tool_calls('<tool_call>\n{"name": "get_time", "argum', TOOLS)
    assert broken.tool_calls == [] and broken.content


def test_arguments_given_as_a_json_string_are_decoded_once() -> None:
    text = '<tool_call>{"name": "get_time", "arguments": "{\\"tz\\": \\"UTC\\"}"}</tool_call>'
    assert args(parse_tool_calls(text, TOOLS)) == {"tz": "UTC"}


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '```\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n```',
        'Here:\n```json\n{"function": {"name": "get_weather", '
        '"arguments": {"city": "Paris"}}}\n```',
        '```json\n{"type": "function", "function": {"name": "get_weather", '
        '"arguments": "{\\"city\\": \\"Paris\\"}"}}\n```',
        '```json\n{"function": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    ],
)
def test_fenced_and_bare_json_calls(text: str) -> None:
    out = parse_tool_calls(text, TOOLS)
    assert out.source in ("fenced", "bare"), out
    assert out.tool_calls[0]["function"]["name"] == "get_weather"
    assert args(out) == {"city": "Paris"}


def test_a_fenced_list_is_parallel_calls() -> None:
    text = (
        '```json\n[{"name": "get_weather", "arguments": {"city": "Paris"}},\n'
        ' {"name": "get_weather", "arguments": {"city": "Rome"}}]\n```'
    )
    out = parse_tool_calls(text, TOOLS)
    assert [args(out, i)["city"] for i in range(2)] == ["Paris", "Rome"]
    assert out.content is None


def test_json_that_is_not_a_call_of_these_tools_stays_text() -> None:
    answer = 'Use this config:\n```json\n{"name": "my-app", "version": "1.0"}\n```'
    out = parse_tool_calls(answer, TOOLS)
    assert out.tool_calls == [] and out.content == answer and out.source == "none"
    assert parse_tool_calls('{"name": "rm_rf", "arguments": {}}', TOOLS).tool_calls == []
    assert parse_tool_calls("```json\n{not json}\n```", TOOLS).tool_calls == []
    # without the request's tools only the native tags count
    assert parse_tool_calls('{"name": "get_time", "arguments": {}}').tool_calls == []
    assert parse_tool_calls("plain answer").content == "plain answer"


def test_ids_look_like_openais() -> None:
    first, second = new_call_id(), new_call_id()
    assert first.startswith("call_") and len(first) == 29 and first != second


def test_history_messages_become_what_templates_read() -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "42"},
        {"role": "assistant", "content": "done", "tool_calls": None},
    ]
    out = template_messages(messages)
    assert out[0]["content"] == "hi there"
    assert out[1]["content"] == "" and out[1]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert "tool_calls" not in out[3]
    assert arguments_object("not json") == "not json"
    with pytest.raises(InvalidRequest):
        template_messages([{"role": "user", "content": [{"type": "image_url"}]}])


def test_the_gguf_template_renders_tools_calls_and_results() -> None:
    renderer = ToolPromptRenderer.from_gguf(small_model_path())
    assert renderer.supports_tools
    specs = tool_specs(
        [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}},
                },
            }
        ]
    )
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 21}'},
    ]
    prompt = renderer.render(messages, specs)
    assert "# Tools" in prompt and '"name": "get_weather"' in prompt
    assert '"type": "object"' in prompt  # the normalised schema, not Gorilla's "dict"
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
        in prompt
    )
    assert '<tool_response>\n{"temp_c": 21}\n</tool_response>' in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert renderer.render(messages[:1], specs, prefix="<tool_call>").endswith(
        "assistant\n<tool_call>"
    )
    plain = renderer.render(messages[:1])
    assert "# Tools" not in plain
