"""JSON schema → llama.cpp GBNF: the grammar that makes a model's JSON match a schema.

Why our own converter and not ``llama_cpp.llama_grammar.json_schema_to_gbnf``: that one (a
copy of llama.cpp's example script) asserts on schemas clients send every day (a parameter
with only a description, Gorilla's ``dict``/``float``/``tuple``/``any``), writes ``\\`` in a
property name or enum value unescaped into the grammar, lets raw control characters into
strings (invalid JSON), and importing it loads the native library. This one takes a schema
already normalised by :mod:`strata.core.tools.grammar` and never fails on it.

What the grammar enforces: types, ``enum``/``const``, object properties in declared order
(required ones always present; no undeclared keys unless ``additionalProperties`` allows
them), tuples (``prefixItems``), array item schemas and small ``minItems``/``maxItems``,
string lengths, ``anyOf``/``oneOf`` as alternatives, and local ``$ref`` (recursion
included). What it does not (any value passes them): ``pattern``, ``format``, numeric
bounds, ``uniqueItems``, ``not``; the tool's own validation still applies to those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any] | bool

_SPACE = '" "?'
_MAX_EXPLICIT_REPEAT = 32  # bounded repetitions beyond this are left unbounded

PRIMITIVES: dict[str, str] = {
    "space": _SPACE,
    "value": "object | array | string | number | boolean | null",
    "object": '"{" space ( string ":" space value ( "," space string ":" space value )* )? '
    '"}" space',
    "array": '"[" space ( value ( "," space value )* )? "]" space',
    # JSON strings: no raw control characters, only JSON's escapes.
    "char": r'[^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )',
    "string": r'"\"" char* "\"" space',
    "integral-part": "[0] | [1-9] [0-9]{0,15}",
    "decimal-part": "[0-9]{1,16}",
    "number": '"-"? integral-part ( "." decimal-part )? ( [eE] [-+]? decimal-part )? space',
    "integer": '"-"? integral-part space',
    "boolean": '( "true" | "false" ) space',
    "null": '"null" space',
}

_DEPENDS: dict[str, tuple[str, ...]] = {
    "value": ("object", "array", "string", "number", "boolean", "null"),
    "object": ("string", "value", "space"),
    "array": ("value", "space"),
    "string": ("char", "space"),
    "number": ("integral-part", "decimal-part", "space"),
    "integer": ("integral-part", "space"),
    "boolean": ("space",),
    "null": ("space",),
}

_RULE_NAME = re.compile(r"[^a-zA-Z0-9-]+")


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal: quotes, backslashes and control chars escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def json_literal(value: Any) -> str:
    """The GBNF literal that produces ``value``'s compact JSON (spaces after ``:`` and ``,``
    the way Qwen's template writes JSON)."""
    return gbnf_literal(json.dumps(value, ensure_ascii=False))


class GrammarBuilder:
    """Collects named rules; :meth:`rule_for` returns the rule that matches a schema.

    Identical rule bodies share one name, so fifty string parameters cost one ``string``."""

    def __init__(self) -> None:
        self._rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self._document: Schema = {}
        self._refs: dict[tuple[int, str], str] = {}

    def root_rule(self, document: Schema, hint: str) -> str:
        """The rule for a whole schema document; its ``$ref``s resolve inside it."""
        self._document = document
        return self.rule_for(document, hint)

    def primitive(self, name: str) -> str:
        if name not in self._rules:
            self._rules[name] = PRIMITIVES[name]
            for dep in _DEPENDS.get(name, ()):
                self.primitive(dep)
        return name

    def add(self, hint: str, body: str) -> str:
        """A rule named after ``hint`` with ``body``; reuses the name of an identical body."""
        if body in self._by_body:
            return self._by_body[body]
        base = _RULE_NAME.sub("-", hint).strip("-").lower() or "r"
        if base in PRIMITIVES or base == "root":
            base += "-"
        name, i = base, 1
        while name in self._rules:
            name, i = f"{base}{i}", i + 1
        self._rules[name] = body
        self._by_body[body] = name
        return name

    def _reserve(self, hint: str) -> str:
        """A name for a rule whose body comes later (``$ref`` targets may be recursive)."""
        return self.add(hint, f"__pending_{len(self._rules)}__")

    def _fill(self, name: str, body: str) -> None:
        del self._by_body[self._rules[name]]
        self._rules[name] = body

    def render(self, root_body: str) -> str:
        """The whole grammar, ``root`` first."""
        self.primitive("space")
        lines = [f"root ::= {root_body}"]
        lines += [f"{name} ::= {body}" for name, body in self._rules.items()]
        return "\n".join(lines) + "\n"

    # -- schemas ------------------------------------------------------------------------

    def rule_for(self, schema: Schema, hint: str) -> str:
        """Name of a rule matching JSON values valid under ``schema`` (normalised)."""
        if schema is True or schema == {}:
            return self.primitive("value")
        if schema is False:
            raise ValueError("a schema of false accepts no value")
        assert isinstance(schema, Mapping)
        if "$ref" in schema:
            return self._ref(str(schema["$ref"]))
        if "const" in schema:
            return self.add(hint, json_literal(schema["const"]) + " space")
        if "enum" in schema:
            alternatives = " | ".join(json_literal(v) for v in schema["enum"])
            return self.add(hint, f"( {alternatives} ) space")
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [s for s in schema[key] if s is not False]
                names = [self.rule_for(s, f"{hint}-{i}") for i, s in enumerate(options)]
                return self.add(hint, " | ".join(dict.fromkeys(names)))
        kind = schema.get("type")
        if isinstance(kind, list):
            names = [self.rule_for({**schema, "type": t}, f"{hint}-{t}") for t in kind]
            return self.add(hint, " | ".join(dict.fromkeys(names)))
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, hint)
        if kind == "array":
            return self._array(schema, hint)
        if kind == "string":
            return self._string(schema, hint)
        if kind in ("number", "integer", "boolean", "null"):
            return self.primitive(str(kind))
        return self.primitive("value")

    def _ref(self, ref: str) -> str:
        key = (id(self._document), ref)
        if key in self._refs:
            return self._refs[key]
        target = resolve_ref(self._document, ref)
        name = self._reserve(f"ref-{ref.rsplit('/', 1)[-1]}")
        self._refs[key] = name
        self._fill(name, self.rule_for(target, f"{name}-def"))
        return name

    def _string(self, schema: Mapping[str, Any], hint: str) -> str:
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        if low == 0 and high is None:
            return self.primitive("string")
        self.primitive("char")
        bound = f"{{{low},{int(high)}}}" if high is not None else f"{{{low},}}"
        return self.add(hint, f'"\\"" char{bound} "\\"" space')

    def _array(self, schema: Mapping[str, Any], hint: str) -> str:
        sep = '"," space'
        prefix = schema.get("prefixItems")
        items = schema.get("items", prefix is None)
        self.primitive("space")
        if prefix:
            names = [self.rule_for(s, f"{hint}-{i}") for i, s in enumerate(prefix)]
            body = f" {sep} ".join(names)
            if items is not False:
                body += f" ( {sep} {self.rule_for(items, f'{hint}-rest')} )*"
            return self.add(hint, f'"[" space {body} "]" space')
        if items is False:
            return self.add(hint, '"[" space "]" space')
        item = self.rule_for(items, f"{hint}-item")
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        if low > _MAX_EXPLICIT_REPEAT:
            low = 0
        if high is not None and (int(high) > _MAX_EXPLICIT_REPEAT or int(high) < low):
            high = None
        return self.add(hint, f'"[" space {_repeat(item, sep, low, high)} "]" space')

    def _object(self, schema: Mapping[str, Any], hint: str) -> str:
        properties: Mapping[str, Schema] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        extra: Schema = schema.get("additionalProperties", not properties)
        if not properties and (extra is True or extra == {}):
            return self.primitive("object")
        self.primitive("space")
        keyed = [(k, s) for k, s in properties.items() if s is not False]
        kvs = [
            (
                self.add(
                    f"{hint}-{key}-kv",
                    f'{json_literal(key)} space ":" space {self.rule_for(sub, f"{hint}-{key}")}',
                ),
                key in required,
            )
            for key, sub in keyed
        ]
        extra_kv = None
        if extra is not False:
            value = self.rule_for(extra, f"{hint}-extra-value")
            extra_kv = self.add(f"{hint}-extra-kv", f'string ":" space {value}')
            self.primitive("string")
        return self.add(hint, f'"{{" space {self._members(kvs, extra_kv, hint)} "}}" space')

    def _members(self, kvs: list[tuple[str, bool]], extra_kv: str | None, hint: str) -> str:
        """Members in declared order, optional ones skippable, commas always right.

        ``after[i]``: members i.. when one was already written (each starts with a comma);
        ``first[i]``: members i.. when none was written yet."""
        sep = '"," space'
        after = f"( {sep} {extra_kv} )*" if extra_kv else ""
        first = f"( {extra_kv} ( {sep} {extra_kv} )* )?" if extra_kv else ""
        for i in range(len(kvs) - 1, -1, -1):
            kv, needed = kvs[i]
            tail = self.add(f"{hint}-after-{i + 1}", after) if after else ""
            start = f"{kv} {tail}".strip()
            after = f"{sep} {start}" if needed else f"( {sep} {kv} )? {tail}".strip()
            if needed:
                first = start
            else:
                rest = self.add(f"{hint}-from-{i + 1}", first) if first else ""
                first = f"( {start} | {rest} )" if rest else f"( {start} )?"
        return first


def _repeat(item: str, sep: str, low: int, high: int | None) -> str:
    """``item`` repeated ``low``..``high`` times (``high`` None: unbounded), separated."""
    if low == 0 and high is None:
        return f"( {item} ( {sep} {item} )* )?"
    if high is None:
        return " ".join([item] + [f"{sep} {item}"] * (low - 1)) + f" ( {sep} {item} )*"
    if high == 0:
        return ""
    head = " ".join([item] + [f"{sep} {item}"] * (low - 1)) if low else ""
    optional = ""
    for _ in range(high - max(low, 1)):
        optional = f"( {sep} {item} {optional} )?".replace("  ", " ")
    if low == 0:
        return f"( {item} {optional} )?".replace("  ", " ")
    return f"{head} {optional}".strip()


def resolve_ref(document: Schema, ref: str) -> Schema:
    """The subschema a local ``$ref`` (``#``, ``#/$defs/x``) points to; KeyError if none."""
    if not ref.startswith("#"):
        raise KeyError(ref)
    target: Any = document
    for raw in ref[1:].strip("/").split("/") if ref.strip("#/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        try:
            target = target[int(part)] if isinstance(target, list) else target[part]
        except (IndexError, ValueError, TypeError) as exc:
            raise KeyError(ref) from exc
    if not isinstance(target, Mapping | bool):
        raise KeyError(ref)
    return target


def schema_to_gbnf(schema: Schema) -> str:
    """A whole grammar whose ``root`` is one JSON value valid under ``schema``."""
    builder = GrammarBuilder()
    return builder.render(builder.root_rule(schema, "value-root"))
