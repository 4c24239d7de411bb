"""The Berkeley Function Calling Leaderboard's AST checker, for ``bench/tools.py``.

Why a re-implementation: the published BFCL figures we compare against are scored by
Gorilla's ``ast_checker.py``; the benchmark only means something if we score the same way.
This follows its rules for the non-live Python categories and irrelevance:

- the right function(s), by name (dots become underscores, as BFCL's FC handlers send them);
- no missing required parameter, no parameter outside the function or the answer key, and
  no omitted parameter the answer key does not mark optional (``""`` among its values);
- each value among the allowed ones, type-checked first (an int passes for a float);
  strings compared lower-case with spaces and ``,./-_*^`` removed; lists and dicts element
  by element with the same rule;
- parallel calls matched in any order (greedily, as BFCL does);
- irrelevance passes only when the model made no call.

Items are the lines of ``bfcl.dev.jsonl``: ``{id, category, messages, functions,
ground_truth}``, where ``ground_truth`` is ``[{name: {param: [allowed values]}}]``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

Call = dict[str, dict[str, Any]]  # {function name: {param: value}}, one call

# Gorilla's types → OpenAI's, exactly as BFCL's GORILLA_TO_OPENAPI (``any`` is sent as string).
GORILLA_TO_OPENAPI: dict[str, str] = {
    "integer": "integer", "number": "number", "float": "number", "string": "string",
    "boolean": "boolean", "bool": "boolean", "array": "array", "list": "array",
    "dict": "object", "object": "object", "tuple": "array", "any": "string",
    "byte": "integer", "short": "integer", "long": "integer", "double": "number",
    "char": "string",
}  # fmt: skip

# The Python type BFCL checks a value against, per Gorilla type.
_PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool, "array": list,
    "tuple": list, "dict": dict, "any": str,
}  # fmt: skip
_NESTED = ("array", "tuple")
_PYTHON_HINT = " Note that the provided function is in Python 3 syntax."
_STRIP = re.compile(r"[ ,./\-_*^]")


def fc_name(name: str) -> str:
    """A function name as FC models see it: dots are not allowed there."""
    return name.replace(".", "_")


def _cast(properties: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, raw in properties.items():
        value = dict(raw)
        kind = value.get("type")
        if kind == "float":
            value["format"] = "float"
            value["description"] = (
                str(value.get("description", "")) + " This is a float type value."
            )
        value["type"] = (
            GORILLA_TO_OPENAPI.get(kind, "string") if isinstance(kind, str) else "string"
        )
        if value["type"] in ("array", "object"):
            if "properties" in value:
                value["properties"] = _cast(value["properties"])
            elif isinstance(value.get("items"), Mapping):
                value["items"] = _cast({"_": value["items"]})["_"]
        out[key] = value
    return out


def openai_tools(functions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A BFCL item's functions as OpenAI tools, the way BFCL's FC handlers convert them."""
    tools = []
    for function in copy.deepcopy(list(functions)):
        parameters = dict(function.get("parameters", {}))
        parameters["type"] = "object"
        parameters["properties"] = _cast(parameters.get("properties", {}))
        body = {
            "name": fc_name(function["name"]),
            "description": str(function.get("description", "")) + _PYTHON_HINT,
            "parameters": parameters,
        }
        tools.append({"type": "function", "function": body})
    return tools


def calls_from_openai(tool_calls: Sequence[Mapping[str, Any]] | None) -> list[Call] | None:
    """OpenAI ``tool_calls`` as BFCL's ``[{name: params}]``; None if any arguments are not a
    JSON object (BFCL counts an undecodable answer as wrong)."""
    calls: list[Call] = []
    for call in tool_calls or []:
        function = call.get("function", {})
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            return None
        if not isinstance(arguments, dict):
            return None
        calls.append({str(function.get("name")): arguments})
    return calls


@dataclass(frozen=True)
class Verdict:
    valid: bool
    error: str = ""
    error_type: str = ""


_OK = Verdict(True)


def _norm(value: str) -> str:
    return _STRIP.sub("", value).lower().replace("'", '"')


def _norm_any(value: Any) -> Any:
    return _norm(value) if isinstance(value, str) else value


def _answer_type(allowed: Sequence[Any]) -> type | None:
    for answer in allowed:
        if answer != "":
            return type(answer)
    return None


def _type_ok(value: Any, allowed: Sequence[Any], expected: type, nested: type | None) -> bool:
    """BFCL's type_checker: the declared type, or the answer key's type (a variable name)."""
    if type(value) is expected:
        if nested is None:
            return True
        items = cast("list[Any]", value)  # expected is list or tuple here
        for item_answers in allowed:
            if type(item_answers) is not list or all(
                _type_ok(v, item_answers, nested, None) for v in items
            ):
                return True
        return False
    answer_type = _answer_type(allowed)
    return answer_type is not None and type(value) is answer_type


def _dict_ok(value: Mapping[str, Any], allowed: Sequence[Any]) -> bool:
    for answer in allowed:
        if answer == "" or not isinstance(answer, Mapping):
            continue
        if all(
            k in answer and _norm_any(v) in [_norm_any(a) for a in answer[k]]
            for k, v in value.items()
        ) and all(k in value or "" in v for k, v in answer.items()):
            return True
    return False


def _list_dict_ok(value: Sequence[Any], allowed: Sequence[Any]) -> bool:
    for answer in allowed:
        if (
            isinstance(answer, list)
            and len(answer) == len(value)
            and all(
                isinstance(v, Mapping) and _dict_ok(v, [a])
                for v, a in zip(value, answer, strict=True)
            )
        ):
            return True
    return False


def _list_ok(value: Sequence[Any], allowed: Sequence[Any]) -> bool:
    mine = [_norm_any(v) for v in value]
    return any(isinstance(a, list) and mine == [_norm_any(x) for x in a] for a in allowed)


def check_call(function: Mapping[str, Any], call: Call, answer: Call) -> Verdict:
    """One call against one function description and its answer key (BFCL's
    ``simple_function_checker``)."""
    name = fc_name(function["name"])
    if name not in {fc_name(n) for n in call}:
        return Verdict(
            False, f"function {name} not called", "simple_function_checker:wrong_func_name"
        )
    params = next(v for n, v in call.items() if fc_name(n) == name)
    allowed_by_param = next(iter(answer.values()))
    details = function.get("parameters", {}).get("properties", {})
    for required in function.get("parameters", {}).get("required", []):
        if required not in params:
            return Verdict(
                False,
                f"missing required parameter {required!r}",
                "simple_function_checker:missing_required",
            )
    for param, given in params.items():
        if param not in details or param not in allowed_by_param:
            return Verdict(
                False, f"unexpected parameter {param!r}", "simple_function_checker:unexpected_param"
            )
        allowed = allowed_by_param[param]
        kind = details[param].get("type", "string")
        expected = _PYTHON_TYPES.get(kind, str)
        nested = None
        if kind in _NESTED and isinstance(details[param].get("items"), Mapping):
            nested = _PYTHON_TYPES.get(details[param]["items"].get("type", "string"), str)
        value: Any = list(given) if kind == "tuple" and isinstance(given, tuple) else given
        if expected is float and type(value) is int:
            value = float(value)
        if not _type_ok(value, allowed, expected, nested):
            return Verdict(False, f"wrong type for {param!r}: {value!r}", "type_error")
        answer_type = _answer_type(allowed)
        variable = type(value) is not expected or (answer_type not in (None, expected))
        if not variable and expected is dict:
            ok = _dict_ok(value, allowed)
        elif not variable and expected is list and nested is dict:
            ok = _list_dict_ok(value, allowed)
        elif not variable and expected is str:
            ok = _norm(value) in [_norm(a) for a in allowed if isinstance(a, str)]
        elif not variable and expected is list:
            ok = _list_ok(value, allowed)
        else:
            ok = value in allowed
        if not ok:
            return Verdict(False, f"invalid value for {param!r}: {value!r}", "value_error")
    for param, allowed in allowed_by_param.items():
        if param not in params and "" not in allowed:
            return Verdict(False, f"optional parameter {param!r} not provided", "missing_optional")
    return _OK


def _describe(functions: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((f for f in functions if fc_name(f["name"]) == fc_name(name)), None)


def check_item(item: Mapping[str, Any], calls: Sequence[Call] | None) -> Verdict:
    """Score one BFCL item against the model's calls (None: the answer did not decode)."""
    category = str(item["category"])
    functions: Sequence[Mapping[str, Any]] = item["functions"]
    answers: Sequence[Call] = item["ground_truth"]
    if "irrelevance" in category:
        ok = not calls
        return _OK if ok else Verdict(False, "called a function", "irrelevance:called")
    if not calls:
        return Verdict(False, "no function call", "no_call")
    if len(calls) != len(answers):
        return Verdict(False, f"{len(calls)} calls, expected {len(answers)}", "wrong_count")
    if "parallel" not in category:
        function = _describe(functions, next(iter(answers[0])))
        if function is None:
            return Verdict(False, "answer names no function of the item", "bad_item")
        return check_call(function, calls[0], answers[0])
    functions_for = [_describe(functions, next(iter(answer))) for answer in answers]
    if any(f is None for f in functions_for):
        return Verdict(False, "answer names no function of the item", "bad_item")
    fits = [
        [check_call(f, call, answer).valid for call in calls]
        for f, answer in zip(functions_for, answers, strict=True)
        if f is not None
    ]
    if not _full_matching(fits):
        return Verdict(False, "the calls do not match the answers one to one", "parallel:no_match")
    return _OK


def _full_matching(fits: list[list[bool]]) -> bool:
    """Whether every answer gets its own call (augmenting paths; a handful of calls).

    BFCL matches greedily, which can fail a right answer when one answer key accepts two of
    the calls; a full matching gives the same verdict whenever greedy succeeds."""
    owner: dict[int, int] = {}

    def place(answer: int, seen: set[int]) -> bool:
        for call, fit in enumerate(fits[answer]):
            if fit and call not in seen:
                seen.add(call)
                if call not in owner or place(owner[call], seen):
                    owner[call] = answer
                    return True
        return False

    return all(place(answer, set()) for answer in range(len(fits)))


def _first(allowed: Sequence[Any]) -> Any:
    """The first allowed value, its nested answer keys resolved the same way."""
    value = next(a for a in allowed if a != "")
    if isinstance(value, Mapping):
        return {k: _first(v) for k, v in value.items() if v and v[0] != ""}
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [_first([v]) for v in value]
    return value


def reference_calls(item: Mapping[str, Any]) -> list[Call]:
    """A perfect answer built from the answer key: each required parameter and each
    parameter the key does not mark optional first, with its first allowed value."""
    calls = []
    for answer in item["ground_truth"]:
        for name, params in answer.items():
            function = _describe(item["functions"], name) or {}
            schema = function.get("parameters", {})
            required = set(schema.get("required", []))
            chosen = {
                param: _first(allowed)
                for param, allowed in params.items()
                if any(a != "" for a in allowed)
                and (
                    param in required
                    or (allowed[0] != "" and param in schema.get("properties", {}))
                )
            }
            calls.append({fc_name(name): chosen})
    return calls
