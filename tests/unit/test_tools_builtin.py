"""The calculator: exact arithmetic, readable errors, and nothing but arithmetic."""

from __future__ import annotations

import math

import pytest

from strata.features.tools.builtin import (
    CALCULATOR_TOOL,
    CalculatorError,
    calculate,
    run_calculator,
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2^10", 1024),
        ("2^3*2", 16),
        ("-2 ** 2", -4),
        ("sqrt(16)", 4),
        ("round(pi, 3)", 3.142),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("factorial(5)", 120),
        ("log(e)", 1),
        ("hypot(3, 4)", 5),
        ("1e3 + 0.5", 1000.5),
        ("  4 * 0.25 ", 1),
    ],
)
def test_arithmetic(expression: str, expected: float) -> None:
    assert calculate(expression) == pytest.approx(expected)


def test_whole_floats_come_back_as_ints() -> None:
    assert isinstance(calculate("sqrt(16)"), int)
    assert isinstance(calculate("0.1 + 0.2"), float)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('id')",
        "open('/etc/passwd')",
        "(1).__class__",
        "[1, 2]",
        "x + 1",
        "'a' * 3",
        "True + 1",
        "lambda: 1",
        "sqrt(x=4)",
        "math.sqrt(4)",
        "1 if 1 else 2",
        "1 < 2",
    ],
)
def test_anything_but_arithmetic_is_refused(expression: str) -> None:
    with pytest.raises(CalculatorError):
        calculate(expression)


@pytest.mark.parametrize(
    "expression",
    ["9 ** 9 ** 9", "2 ** 100000", "10.0 ** 400", "factorial(100000)", "1 / 0", "sqrt(-1)"],
)
def test_expressions_that_would_hang_or_fail_are_errors(expression: str) -> None:
    with pytest.raises(CalculatorError):
        calculate(expression)


def test_size_and_depth_are_bounded() -> None:
    with pytest.raises(CalculatorError, match="longer"):
        calculate("1+" * 600 + "1")
    with pytest.raises(CalculatorError, match="deeply"):
        calculate("(" * 60 + "1" + ")" * 60 + "+" + "-" * 60 + "1")
    with pytest.raises(CalculatorError, match="valid"):
        calculate("2 +")


def test_the_tool_returns_results_and_errors_for_the_model() -> None:
    assert run_calculator({"expression": "6*7"}) == {"result": 42}
    assert "error" in run_calculator({"expression": "6*"})
    assert "error" in run_calculator({})
    assert CALCULATOR_TOOL["function"]["name"] == "calculator"
    assert math.isclose(run_calculator({"expression": "pi"})["result"], math.pi)
