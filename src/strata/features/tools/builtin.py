"""Built-in tools that need no sandbox: today the ``calculator``.

Why a calculator at all: small models get arithmetic wrong, and a tool call they can make
turns a guess into an exact answer. Why not ``eval``: model output is untrusted input. The
expression is parsed with :mod:`ast` and only numbers, arithmetic operators, a few named
constants and functions from :mod:`math` are evaluated; anything else is an error the model
can read and correct. Sizes are bounded (expression length, nesting, exponent, factorial)
so no expression can pin a core or exhaust memory.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

Number = int | float

MAX_EXPRESSION_CHARS = 1000
MAX_DEPTH = 50
MAX_POWER_BITS = 10_000  # an int result of 2**10000 has ~3000 digits: enough for a calculator
MAX_FACTORIAL = 1000

CALCULATOR_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": (
            "Evaluate an arithmetic expression exactly. Supports + - * / // % ** (or ^), "
            "parentheses, pi, e, and sqrt, exp, log, log10, log2, sin, cos, tan, asin, acos, "
            "atan, floor, ceil, abs, round, min, max, factorial, hypot."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "The expression, e.g. '(3 + 4) * sqrt(2) / 7'.",
                }
            },
            "required": ["expression"],
            "additionalProperties": False,
        },
    },
}


class CalculatorError(ValueError):
    """The expression is not arithmetic this calculator evaluates; the message says why."""


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        bits = abs(base).bit_length() * exponent
        if bits > MAX_POWER_BITS:
            raise CalculatorError("result too large")
    try:
        result: Number = operator.pow(base, exponent)
    except OverflowError as exc:
        raise CalculatorError("result too large") from exc
    if isinstance(result, complex):
        raise CalculatorError("result is not a real number")
    return result


def _factorial(n: Number) -> Number:
    if not isinstance(n, int) and not (isinstance(n, float) and n.is_integer()):
        raise CalculatorError("factorial needs a whole number")
    if not 0 <= n <= MAX_FACTORIAL:
        raise CalculatorError(f"factorial needs 0 <= n <= {MAX_FACTORIAL}")
    return math.factorial(int(n))


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}

_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}

_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}

_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "factorial": _factorial,
    "hypot": math.hypot,
}


def _evaluate(node: ast.AST, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise CalculatorError("expression nested too deeply")
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, depth + 1)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise CalculatorError(f"not a number: {node.value!r}")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate(node.left, depth + 1)
        right = _evaluate(node.right, depth + 1)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, depth + 1))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name: {node.id}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise CalculatorError(f"unknown function: {ast.unparse(node.func)}")
        if node.keywords:
            raise CalculatorError("functions take positional arguments only")
        args = [_evaluate(arg, depth + 1) for arg in node.args]
        return _FUNCTIONS[node.func.id](*args)
    raise CalculatorError(f"not arithmetic: {ast.unparse(node)}")


def calculate(expression: str) -> Number:
    """The value of ``expression``; raises :class:`CalculatorError` with a readable reason."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        # People and models write 2^10 for a power; as ** it also keeps a power's precedence
        # (2^3*2 is 16), which reading ^ as an operator of Python's xor precedence would not.
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not a valid expression: {exc.msg}") from exc
    try:
        result = _evaluate(tree, 0)
    except ZeroDivisionError as exc:
        raise CalculatorError("division by zero") from exc
    except (OverflowError, ValueError, TypeError) as exc:
        if isinstance(exc, CalculatorError):
            raise
        raise CalculatorError(str(exc) or type(exc).__name__) from exc
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result


def run_calculator(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The tool as the agent loop calls it: arguments in, a JSON-ready result or error out
    (an error goes back to the model, which can fix its expression and call again)."""
    expression = arguments.get("expression")
    if not isinstance(expression, str):
        return {"error": "argument 'expression' must be a string"}
    try:
        return {"result": calculate(expression)}
    except CalculatorError as exc:
        return {"error": str(exc)}
