"""The BFCL AST checker: real items from the development split, right and wrong answers."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from strata.features.tools.bfcl import (
    calls_from_openai,
    check_item,
    fc_name,
    openai_tools,
    reference_calls,
)

BFCL = Path("/work/shared/data/tools/bfcl.dev.jsonl")
for parent in Path(__file__).resolve().parents:
    if (parent / "shared" / "data" / "tools" / "bfcl.dev.jsonl").exists():
        BFCL = parent / "shared" / "data" / "tools" / "bfcl.dev.jsonl"
        break

# Real lines of bfcl.dev.jsonl, trimmed to what the checker reads, so these tests run anywhere.
MONOPOLY: dict[str, Any] = {
    "id": "simple_python_329",
    "category": "simple_python",
    "functions": [
        {
            "name": "monopoly_odds_calculator",
            "parameters": {
                "type": "dict",
                "properties": {
                    "number": {"type": "integer"},
                    "dice_number": {"type": "integer"},
                    "dice_faces": {"type": "integer"},
                },
                "required": ["number", "dice_number"],
            },
        }
    ],
    "ground_truth": [
        {"monopoly_odds_calculator": {"number": [7], "dice_number": [2], "dice_faces": [6, ""]}}
    ],
}
SIMILARITY: dict[str, Any] = {
    "id": "parallel_115",
    "category": "parallel",
    "functions": [
        {
            "name": "genetics.calculate_similarity",
            "parameters": {
                "type": "dict",
                "properties": {
                    "species1": {"type": "string"},
                    "species2": {"type": "string"},
                    "format": {"type": "string"},
                },
                "required": ["species1", "species2"],
            },
        }
    ],
    "ground_truth": [
        {
            "genetics.calculate_similarity": {
                "species1": ["human", "Human"],
                "species2": ["chimpanzee"],
                "format": ["percentage", ""],
            }
        },
        {
            "genetics.calculate_similarity": {
                "species1": ["human"],
                "species2": ["chimpanzee"],
                "format": ["fraction"],
            }
        },
        {
            "genetics.calculate_similarity": {
                "species1": ["human"],
                "species2": ["gorilla"],
                "format": ["percentage", ""],
            }
        },
        {
            "genetics.calculate_similarity": {
                "species1": ["human"],
                "species2": ["gorilla"],
                "format": ["fraction"],
            }
        },
    ],
}
DISTANCE: dict[str, Any] = {
    "id": "simple_python_83",
    "category": "simple_python",
    "functions": [
        {
            "name": "calculate_distance",
            "parameters": {
                "type": "dict",
                "properties": {
                    "coord1": {"type": "tuple", "items": {"type": "float"}},
                    "coord2": {"type": "tuple", "items": {"type": "float"}},
                    "unit": {"type": "string"},
                },
                "required": ["coord1", "coord2", "unit"],
            },
        }
    ],
    "ground_truth": [
        {
            "calculate_distance": {
                "coord1": [[33.4484, -112.074]],
                "coord2": [[34.0522, -118.2437]],
                "unit": ["miles"],
            }
        }
    ],
}
IRRELEVANT: dict[str, Any] = {
    "id": "irrelevance_171",
    "category": "irrelevance",
    "functions": [
        {"name": "music.search_composer", "parameters": {"type": "dict", "properties": {}}}
    ],
    "ground_truth": [],
}


def sim(species2: str, fmt: str | None, species1: str = "human") -> dict[str, Any]:
    params = {"species1": species1, "species2": species2}
    if fmt is not None:
        params["format"] = fmt
    return {"genetics_calculate_similarity": params}


def test_right_call_passes_with_optional_left_out_or_given() -> None:
    assert check_item(
        MONOPOLY, [{"monopoly_odds_calculator": {"number": 7, "dice_number": 2}}]
    ).valid
    full = {"number": 7, "dice_number": 2, "dice_faces": 6}
    assert check_item(MONOPOLY, [{"monopoly_odds_calculator": full}]).valid


@pytest.mark.parametrize(
    ("calls", "error_type"),
    [
        ([{"monopoly_odds_calculator": {"number": 7}}], "missing_required"),
        (
            [{"monopoly_odds_calculator": {"number": 7, "dice_number": 2, "sides": 6}}],
            "unexpected_param",
        ),
        ([{"monopoly_odds_calculator": {"number": 8, "dice_number": 2}}], "value_error"),
        ([{"monopoly_odds_calculator": {"number": "7", "dice_number": 2}}], "type_error"),
        ([{"monopoly_odds": {"number": 7, "dice_number": 2}}], "wrong_func_name"),
        ([], "no_call"),
        (None, "no_call"),
    ],
)
def test_wrong_calls_fail_with_a_reason(calls: Any, error_type: str) -> None:
    verdict = check_item(MONOPOLY, calls)
    assert not verdict.valid and error_type in verdict.error_type


def test_strings_compare_loosely_and_ints_pass_for_floats() -> None:
    loose = [
        sim("Chimpanzee", "percentage", "HUMAN"),
        sim("chimpanzee", "Fraction"),
        sim("gor-illa", None),
        sim("gorilla", "fraction."),
    ]
    assert check_item(SIMILARITY, loose).valid
    ints = [
        {
            "calculate_distance": {
                "coord1": [33.4484, -112.074],
                "coord2": [34.0522, -118.2437],
                "unit": "Miles",
            }
        }
    ]
    assert check_item(DISTANCE, ints).valid
    whole = json.loads(json.dumps(MONOPOLY))
    whole["functions"][0]["parameters"]["properties"]["number"]["type"] = "float"
    assert check_item(whole, [{"monopoly_odds_calculator": {"number": 7, "dice_number": 2}}]).valid


def test_parallel_calls_match_in_any_order_but_not_twice() -> None:
    calls = [
        sim("gorilla", "fraction"),
        sim("chimpanzee", None),
        sim("gorilla", None),
        sim("chimpanzee", "fraction"),
    ]
    assert check_item(SIMILARITY, calls).valid
    assert not check_item(SIMILARITY, calls[:3]).valid
    doubled = [
        sim("gorilla", "fraction"),
        sim("gorilla", "fraction"),
        sim("chimpanzee", None),
        sim("gorilla", None),
    ]
    assert not check_item(SIMILARITY, doubled).valid


def test_irrelevance_passes_only_without_a_call() -> None:
    assert check_item(IRRELEVANT, []).valid and check_item(IRRELEVANT, None).valid
    assert not check_item(IRRELEVANT, [{"music_search_composer": {}}]).valid


def test_openai_conversion_follows_bfcls_handlers() -> None:
    tools = openai_tools(SIMILARITY["functions"] + DISTANCE["functions"])
    first, second = tools[0]["function"], tools[1]["function"]
    assert (
        first["name"] == "genetics_calculate_similarity" == fc_name("genetics.calculate_similarity")
    )
    assert first["parameters"]["type"] == "object"
    assert second["parameters"]["properties"]["coord1"] == {
        "type": "array",
        "items": {
            "type": "number",
            "format": "float",
            "description": " This is a float type value.",
        },
    }
    assert SIMILARITY["functions"][0]["parameters"]["type"] == "dict"  # the item is untouched
    raw = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]
    assert calls_from_openai(raw) == [{"f": {"a": 1}}]
    assert calls_from_openai([{"function": {"name": "f", "arguments": "[1]"}}]) is None
    assert calls_from_openai(None) == []


def test_the_answer_key_fed_back_scores_one_on_every_item() -> None:
    if not BFCL.exists():
        pytest.skip(f"BFCL data not found at {BFCL}")
    items = [json.loads(line) for line in BFCL.read_text().splitlines() if line.strip()]
    assert len(items) == 620
    rng = random.Random(0)
    for item in items:
        calls = reference_calls(item)
        assert check_item(item, calls).valid, item["id"]
        shuffled = rng.sample(calls, len(calls))
        assert check_item(item, shuffled).valid, item["id"]
        if item["category"] != "irrelevance":
            assert not check_item(item, []).valid
