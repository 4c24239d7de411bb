"""Client tool schemas → grammars for Qwen2.5's native tool calls.

Two jobs. First, every schema a client may send must compile: clients send JSON schema the
way they write it (a parameter with only a description, tuples as ``items: [...]``, Gorilla's
``dict``/``float``/``tuple``/``any``, OpenAPI's ``nullable``, draft-3 ``required: true``), so
:func:`normalize_schema` turns each into the plain subset :mod:`.gbnf` compiles, and only a
schema that is not JSON schema at all (``"type": "banana"``, ``"properties": 3``) is an
``InvalidRequest`` naming the tool: a 400, never a 500.

Second, the grammar for the calls themselves, in the format Qwen2.5 was trained on and its
chat template writes back into the history::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

with further calls after a newline. :func:`plan_tool_decoding` says, per ``tool_choice``,
which grammar applies when; the llama backend follows it (see :class:`ToolDecoding`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from strata.core.errors import InvalidRequest
from strata.core.tools.gbnf import GrammarBuilder, Schema, gbnf_literal, resolve_ref

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})

# Gorilla (BFCL) and Java/Python spellings → JSON schema; None means untyped (any value).
GORILLA_TYPES: dict[str, str | None] = {
    "dict": "object", "hashmap": "object", "hashtable": "object", "map": "object",
    "float": "number", "double": "number", "decimal": "number",
    "int": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "bigint": "integer",
    "tuple": "array", "list": "array", "arraylist": "array", "queue": "array", "stack": "array",
    "str": "string", "char": "string",
    "bool": "boolean",
    "any": None,
}  # fmt: skip

_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength")
_STRUCTURE = ("type", "properties", "required", "additionalProperties", "items", "prefixItems")


class SchemaError(ValueError):
    """Not a JSON schema; the message says where (a JSON pointer) and why."""


def _type(value: Any, where: str) -> list[str | None]:
    names = value if isinstance(value, list) else [value]
    out: list[str | None] = []
    for name in names:
        if not isinstance(name, str):
            raise SchemaError(f"{where}/type: must be a string or a list of strings")
        if name in JSON_TYPES:
            out.append(name)
        elif name.lower() in JSON_TYPES:
            out.append(name.lower())  # Java's "String", "Boolean"
        elif name.lower() in GORILLA_TYPES:
            out.append(GORILLA_TYPES[name.lower()])
        else:
            raise SchemaError(f"{where}/type: unknown type {name!r}")
    return out


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` narrowed by ``extra``: properties and required combine, other keys of
    ``extra`` win. Enough for ``allOf`` and for ``anyOf`` beside sibling keywords."""
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    return merged


def normalize_schema(schema: Any, where: str = "#") -> Schema:
    """The plain JSON schema :mod:`.gbnf` compiles, or :class:`SchemaError`."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        raise SchemaError(f"{where}: a schema must be an object or a boolean")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SUBSCHEMA_MAPS:
            if not isinstance(value, Mapping):
                raise SchemaError(f"{where}/{key}: must be an object")
            out[key] = {k: normalize_schema(v, f"{where}/{key}/{k}") for k, v in value.items()}
        elif key in _SUBSCHEMA_LISTS:
            if not isinstance(value, list) or (key != "prefixItems" and not value):
                raise SchemaError(f"{where}/{key}: must be a non-empty list of schemas")
            out[key] = [normalize_schema(v, f"{where}/{key}/{i}") for i, v in enumerate(value)]
        elif key in ("additionalProperties", "additionalItems"):
            out[key] = normalize_schema(value, f"{where}/{key}")
        elif key == "items":
            if isinstance(value, list):  # draft-4 tuple
                out["prefixItems"] = [
                    normalize_schema(v, f"{where}/items/{i}") for i, v in enumerate(value)
                ]
            else:
                out["items"] = normalize_schema(value, f"{where}/items")
        elif key == "type":
            kinds = _type(value, where)
            if None not in kinds:
                out["type"] = kinds[0] if len(kinds) == 1 else list(dict.fromkeys(kinds))
        elif key == "enum":
            if not isinstance(value, list) or not value:
                raise SchemaError(f"{where}/enum: must be a non-empty list")
            out["enum"] = value
        elif key == "required":
            if isinstance(value, bool):
                continue  # draft 3: lifted into the parent's list below
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SchemaError(f"{where}/required: must be a list of property names")
            out["required"] = list(dict.fromkeys(value))
        elif key == "$ref":
            if not isinstance(value, str):
                raise SchemaError(f"{where}/$ref: must be a string")
            if value.startswith("#"):
                out["$ref"] = value
            # a remote reference cannot be fetched here: that part stays untyped
        elif key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SchemaError(f"{where}/{key}: must be a non-negative integer")
            out[key] = value
        else:  # description, default, format, ...: the model reads them in the prompt
            out[key] = value
    _lift_draft3_required(schema, out)
    if "additionalItems" in out:
        extra = out.pop("additionalItems")
        if "prefixItems" in out:
            out["items"] = extra
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "allOf" in out:
        for member in out.pop("allOf"):
            if isinstance(member, Mapping):
                out = _merge(out, member)
    for key in ("anyOf", "oneOf"):
        if key in out and any(k in out for k in _STRUCTURE):
            siblings = {k: v for k, v in out.items() if k not in ("anyOf", "oneOf")}
            members: list[Schema] = [
                _merge(siblings, {} if m is True else m) for m in out[key] if m is not False
            ]
            out = {key: members or [False]}
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    return out


def _lift_draft3_required(schema: Mapping[str, Any], out: dict[str, Any]) -> None:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    lifted = [
        k for k, v in properties.items() if isinstance(v, Mapping) and v.get("required") is True
    ]
    if lifted:
        out["required"] = list(dict.fromkeys([*out.get("required", []), *lifted]))


def _check_refs(schema: Schema, document: Schema, where: str) -> None:
    if isinstance(schema, bool):
        return
    if "$ref" in schema:
        try:
            resolve_ref(document, schema["$ref"])
        except KeyError as exc:
            raise SchemaError(f"{where}/$ref: {schema['$ref']!r} points nowhere") from exc
    for key, value in schema.items():
        if key in _SUBSCHEMA_MAPS:
            for k, v in value.items():
                _check_refs(v, document, f"{where}/{key}/{k}")
        elif key in _SUBSCHEMA_LISTS:
            for i, v in enumerate(value):
                _check_refs(v, document, f"{where}/{key}/{i}")
        elif key in ("items", "additionalProperties"):
            _check_refs(value, document, f"{where}/{key}")


@dataclass(frozen=True)
class ToolSpec:
    """One function tool, its parameters normalised; ``parameters`` is what the model sees
    (in the template) and what its arguments are constrained to."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def openai(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry, as chat templates expect it."""
        function = {"name": self.name, "description": self.description}
        return {"type": "function", "function": {**function, "parameters": self.parameters}}


def tool_spec(tool: Mapping[str, Any], index: int = 0) -> ToolSpec:
    """One OpenAI tool (``{"type": "function", "function": {...}}``, or the bare function
    object of the legacy ``functions`` field) as a :class:`ToolSpec`; ``InvalidRequest``
    with ``param="tools"`` naming the tool when it is malformed."""
    function = tool.get("function", tool) if isinstance(tool, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"tools[{index}] is not a function tool with a name", param="tools")
    kind = tool.get("type", "function")
    if kind != "function":
        raise InvalidRequest(f"tools[{index}] ({name}): unsupported type {kind!r}", param="tools")
    raw = function.get("parameters")
    try:
        parameters = normalize_schema({"type": "object", "properties": {}} if raw is None else raw)
        if isinstance(parameters, bool):
            parameters = {} if parameters else {"type": "object", "additionalProperties": False}
        if not any(k in parameters for k in ("type", "anyOf", "oneOf", "$ref", "enum", "const")):
            parameters = {"type": "object", **parameters}
        if parameters.get("type", "object") != "object":
            raise SchemaError("#/type: the parameters of a function must be an object")
        _check_refs(parameters, parameters, "#")
    except SchemaError as exc:
        raise InvalidRequest(
            f"tools[{index}] ({name}): parameters are not a valid JSON schema: {exc}",
            param="tools",
        ) from exc
    description = function.get("description") or ""
    return ToolSpec(name=name, description=str(description), parameters=parameters)


def tool_specs(tools: Sequence[Mapping[str, Any]]) -> list[ToolSpec]:
    """All of a request's tools; duplicate names are a 400 (a call would be ambiguous)."""
    specs = [tool_spec(tool, i) for i, tool in enumerate(tools)]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise InvalidRequest(f"tools: two tools are named {spec.name!r}", param="tools")
        seen.add(spec.name)
    return specs


def _call_rules(builder: GrammarBuilder, tools: Sequence[ToolSpec]) -> str:
    """The rule for one call's JSON line, ``{"name": ..., "arguments": {...}}``."""
    bodies = []
    for tool in tools:
        params: Schema = tool.parameters or {"type": "object"}
        args = builder.root_rule(params, f"{tool.name}-arguments")
        name = gbnf_literal(f'"{tool.name}"')
        bodies.append(
            builder.add(
                f"{tool.name}-call",
                f'"{{" space "\\"name\\"" space ":" space {name} space "," space '
                f'"\\"arguments\\"" space ":" space {args} "}}"',
            )
        )
    return builder.add("call-json", " | ".join(bodies))


def tool_call_grammar(
    tools: Sequence[ToolSpec], *, parallel: bool = True, after_open: bool = False
) -> str:
    """GBNF for one call (``parallel=False``) or one or more, each a ``<tool_call>`` block.

    ``after_open=True``: the grammar for what follows an ``<tool_call>`` the model has just
    written in free text (auto mode), i.e. the rest of that call, then any further calls."""
    if not tools:
        raise ValueError("a tool-call grammar needs at least one tool")
    builder = GrammarBuilder()
    call_json = _call_rules(builder, tools)
    close = gbnf_literal("\n" + TOOL_CALL_CLOSE)
    block = builder.add(
        "tool-call", f"{gbnf_literal(TOOL_CALL_OPEN + chr(10))} {call_json} {close}"
    )
    more = f' ( "\\n" {block} )*' if parallel else ""
    if after_open:
        return builder.render(f'"\\n" {call_json} {close}{more}')
    return builder.render(f"{block}{more}")


Mode = Literal["none", "auto", "required"]


@dataclass(frozen=True)
class ToolDecoding:
    """How to decode one request with tools, for the llama backend.

    - ``grammar`` set (``required`` or a named function): sample with it from the first
      token; the output is only ``<tool_call>`` blocks, then end of turn.
    - ``trigger`` set (``auto``): sample free text with ``stop`` (which holds the trigger).
      If generation ended on the trigger, append the text so far plus the trigger to the
      prompt and continue with ``continuation``; the calls are that continuation. (With
      llama.cpp's lazy grammar sampler, ``grammar_lazy`` triggered by the ``<tool_call>``
      token does the same in one pass.)
    - ``none``: free text, ``stop`` at the trigger so no call ever starts.
    """

    mode: Mode
    tools: tuple[ToolSpec, ...]
    grammar: str | None = None
    stop: tuple[str, ...] = ()
    trigger: str | None = None
    continuation: str | None = None
    grammar_lazy: str | None = None
    parallel: bool = True  # more than one call allowed (OpenAI's parallel_tool_calls)


def plan_tool_decoding(
    tools: Sequence[ToolSpec], tool_choice: Any = "auto", parallel_tool_calls: bool = True
) -> ToolDecoding:
    """The decoding plan for OpenAI's ``tool_choice`` and ``parallel_tool_calls``."""
    specs = tuple(tools)
    if tool_choice is None:
        tool_choice = "auto" if specs else "none"
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        chosen = [t for t in specs if t.name == name]
        if tool_choice.get("type") != "function" or not chosen:
            raise InvalidRequest(
                f"tool_choice names no tool of this request: {name!r}", param="tool_choice"
            )
        grammar = tool_call_grammar(chosen, parallel=parallel_tool_calls)
        return ToolDecoding("required", specs, grammar=grammar, parallel=parallel_tool_calls)
    if tool_choice not in ("none", "auto", "required"):
        raise InvalidRequest(f"unknown tool_choice {tool_choice!r}", param="tool_choice")
    if tool_choice == "none" or not specs:
        if tool_choice == "required":
            raise InvalidRequest("tool_choice 'required' needs tools", param="tool_choice")
        return ToolDecoding("none", specs, stop=(TOOL_CALL_OPEN,))
    if tool_choice == "required":
        grammar = tool_call_grammar(specs, parallel=parallel_tool_calls)
        return ToolDecoding("required", specs, grammar=grammar, parallel=parallel_tool_calls)
    return ToolDecoding(
        "auto",
        specs,
        stop=(TOOL_CALL_OPEN,),
        trigger=TOOL_CALL_OPEN,
        continuation=tool_call_grammar(specs, parallel=parallel_tool_calls, after_open=True),
        grammar_lazy=tool_call_grammar(specs, parallel=parallel_tool_calls),
        parallel=parallel_tool_calls,
    )
