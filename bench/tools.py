"""BFCL (non-live AST categories and irrelevance) through strata's HTTP API.

Each item's functions become OpenAI tools (Gorilla types mapped to JSON schema, dots in names
as underscores, as BFCL's FC handlers do) and its question is sent to
``/v1/chat/completions`` with ``tool_choice: "auto"``, ``temperature: 0``,
``max_tokens: 256``. The calls that come back are scored with BFCL's AST checker
(``strata.features.tools.bfcl``); irrelevance passes only when no call is made.
``parsed_share``: of the answers that tried to call (tool_calls returned, or text that still
holds a ``<tool_call>`` tag or call-shaped JSON), the share that came back as tool_calls.

    python bench/tools.py --data ../shared/data/tools/bfcl.dev.jsonl \
        --model small --model big --model auto --limit-per-category 5 --json out.json

Without ``--url`` it serves the bundled models in-process (uvicorn in a thread, real HTTP)
with each model call cached under ``bench/caches/tools/`` (keyed by the model's sha256 and the
whole request), so a rerun replays and a larger ``--limit-per-category`` pays only for what it
adds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import interrupts_end_the_run, median
from bench._common import write_json as save
from bench._model_cache import ModelCallCache
from bench.flywheel import Server, bundled_here, model_id

from strata.core.engine import Engine
from strata.core.settings import Settings
from strata.edges.http.app import create_app
from strata.features.tools.bfcl import calls_from_openai, check_item, openai_tools

CACHE = Path(__file__).resolve().parent / "caches" / "tools"

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
AST = CATEGORIES[:4]
# Published BFCL v3, FC mode, the general (not Coder) Qwen2.5 Instruct models.
PUBLISHED = {
    "Qwen2.5-1.5B-Instruct": {
        "simple_python": 0.724,
        "multiple": 0.870,
        "parallel": 0.815,
        "parallel_multiple": 0.755,
        "non_live_ast_mean": 0.791,
        "irrelevance": 0.627,
    },
    "Qwen2.5-0.5B-Instruct": {"non_live_ast_mean": 0.623, "irrelevance": 0.462},
}
TARGETS = "big >= 0.80 and small >= 0.65 non-live AST mean; irrelevance >= 0.75; 100% parse"


def load(path: Path, per_category: int | None) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    chosen: list[dict[str, Any]] = []
    for category in CATEGORIES:
        found = [i for i in items if i["category"] == category]
        chosen += found[:per_category] if per_category else found
    return chosen


def tried_to_call(text: str) -> bool:
    """Text that still looks like a call: a tag, or JSON naming a function."""
    if "<tool_call>" in text:
        return True
    stripped = text.strip().removeprefix("```json").removeprefix("```").strip()
    return stripped[:1] in "{[" and '"name"' in stripped


def ask(client: httpx.Client, model: str, item: dict[str, Any]) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": item["messages"],
        "tools": openai_tools(item["functions"]),
        "tool_choice": "auto",
        "temperature": 0,
        "max_tokens": 256,
    }
    started = time.perf_counter()
    response = client.post("/v1/chat/completions", json=body)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        return {"error": response.text[:300], "seconds": seconds}
    message = response.json()["choices"][0]["message"]
    return {"message": message, "seconds": seconds}


def score(model: str, client: httpx.Client, items: list[dict[str, Any]]) -> dict[str, Any]:
    passed: dict[str, list[bool]] = {c: [] for c in CATEGORIES}
    calls_parsed = calls_tried = errors = 0
    seconds: list[float] = []
    unparsed: list[dict[str, str]] = []
    outcomes: dict[str, str] = {}
    for n, item in enumerate(items, 1):
        out = ask(client, model, item)
        seconds.append(out["seconds"])
        if "error" in out:
            errors += 1
            passed[item["category"]].append(False)
            print(f"  {model} {item['id']}: error {out['error']}", file=sys.stderr)
            continue
        message = out["message"]
        tool_calls = message.get("tool_calls")
        if tool_calls:
            calls_parsed += 1
            calls_tried += 1
        elif tried_to_call(message.get("content") or ""):
            calls_tried += 1
            unparsed.append({"id": item["id"], "content": (message.get("content") or "")[:400]})
        verdict = check_item(item, calls_from_openai(tool_calls))
        passed[item["category"]].append(verdict.valid)
        outcome = "pass" if verdict.valid else f"fail {verdict.error_type}"
        outcomes[item["id"]] = outcome
        print(
            f"  {model} [{n}/{len(items)}] {item['id']}: {outcome} ({out['seconds']:.1f} s)",
            file=sys.stderr,
        )
    result: dict[str, Any] = {
        c: round(sum(v) / len(v), 4) if v else None for c, v in passed.items()
    }
    ast = [result[c] for c in AST if result[c] is not None]
    result["non_live_ast_mean"] = round(sum(ast) / len(ast), 4) if ast else None
    result["parsed_share"] = round(calls_parsed / calls_tried, 4) if calls_tried else None
    result["items"] = {c: len(v) for c, v in passed.items()}
    result["errors"] = errors
    result["unparsed"] = unparsed
    result["outcomes"] = outcomes
    result["median_seconds"] = round(median(seconds), 2) if seconds else None
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    columns = [*CATEGORIES, "non_live_ast_mean", "parsed_share"]
    rows = [f"{'model':<24}" + "".join(f"{c[:17]:>18}" for c in columns)]
    for name, figures in {**results, **PUBLISHED}.items():
        cells = []
        for c in columns:
            value = figures.get(c)
            cells.append(f"{'-' if value is None else f'{value:.3f}':>18}")
        label = name if name in results else f"{name} (published)"
        rows.append(f"{label:<24}" + "".join(cells))
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tools/bfcl.dev.jsonl"))
    parser.add_argument("--model", action="append", help="repeatable; default small, big, auto")
    parser.add_argument("--limit-per-category", type=int, default=None)
    parser.add_argument("--url", help="a running strata server (root URL); default: start one")
    parser.add_argument("--cache", type=Path, default=CACHE, help="model-call cache folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    models = args.model or ["small", "big", "auto"]
    items = load(args.data, args.limit_per_category)
    results: dict[str, dict[str, Any]] = {}
    with interrupts_end_the_run(), contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            home = Path(tempfile.mkdtemp(prefix="strata-tools-bench-"))
            served = ["small", "big"]
            settings = Settings(home=home, bundled_models=False, models=bundled_here(home, served))
            engine = Engine(settings)
            cache = ModelCallCache(args.cache)
            cache.install(engine, {m: model_id(m) for m in served})
            server = stack.enter_context(Server(create_app(settings, engine)))
            url = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=url, timeout=7200) as client:
            for model in models:
                results[model] = score(model, client, items)
                if args.json:  # partial results survive an interrupted run
                    save(args.json, {**results, "published": PUBLISHED, "n_items": len(items)})
    print(f"BFCL dev, {len(items)} items ({args.limit_per_category or 'all'} per category)")
    print(table(results))
    print(f"targets: {TARGETS}")
    if args.json:
        save(args.json, {**results, "published": PUBLISHED, "n_items": len(items)})


if __name__ == "__main__":
    main()
