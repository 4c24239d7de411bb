"""HumanEval pass@1 (greedy) of small and big: single shot vs the ``code`` route's loop.

For each item the prompt (signature + docstring) is sent twice through strata's HTTP API,
``temperature: 0``:

- single shot: ``POST /v1/chat/completions`` to the model itself, the code extracted from
  its answer;
- the loop: ``model: "code"`` with ``strata.code = {model, max_attempts}``: the route runs
  each attempt on the docstring's own examples in the sandbox and feeds failures back.

Both send the same system and user messages, so the loop's first attempt is exactly the
single-shot request (the model-call cache answers it: see ``cache`` in the output). The
hidden tests (``test`` + ``check(entry_point)``) are never sent: they only score, each run in
the sandbox with the prompt (its imports and helpers) before the code.

    python bench/code.py --data ../shared/data/code/humaneval.dev.jsonl --limit 40 \
        --json out.json

Model calls are cached per item under ``bench/caches/code/`` (keyed by the model's sha256
and the whole request), so a rerun replays them and a larger ``--limit`` pays only for the
items it adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median, write_json
from bench._model_cache import ModelCallCache
from bench.flywheel import Server, bundled_here, model_id

from strata.core.engine import Engine
from strata.core.settings import Settings
from strata.edges.http.app import create_app
from strata.features.tools.code import SYSTEM, extract_code
from strata.features.tools.code_examples import examples_from_prompt
from strata.features.tools.sandbox import Sandbox

CACHE = Path(__file__).resolve().parent / "caches" / "code"
PUBLISHED = {"big": 0.707, "small": 0.616}  # Qwen2.5-Coder 1.5B / 0.5B Instruct, HumanEval
TARGET = "the loop adds >= 8 points on big and on small"


def load(path: Path, limit: int | None, seed: int) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(items)
    return items[:limit] if limit else items


def messages(item: dict[str, Any]) -> list[dict[str, str]]:
    """What the model is asked: the prompt only (never ``test`` or the solution)."""
    task = f"Complete the following Python function:\n```python\n{item['prompt'].strip()}\n```"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


def body(item: dict[str, Any], model: str, max_tokens: int, **code: Any) -> dict[str, Any]:
    """The request: to ``model`` itself, or (with ``code`` options) to the code route."""
    sent: dict[str, Any] = {"messages": messages(item), "temperature": 0, "max_tokens": max_tokens}
    if code:
        return {**sent, "model": "code", "strata": {"code": {"model": model, **code}}}
    return {**sent, "model": model}


def hidden_pass(sandbox: Sandbox, item: dict[str, Any], code: str) -> bool:
    """The item's hidden tests on ``code``, in the sandbox."""
    if not code:
        return False
    program = (
        f"{item['prompt']}\n    pass\n\n{code}\n\n{item['test']}\n\ncheck({item['entry_point']})\n"
    )
    run = asyncio.run(sandbox.run_python(program))
    return run.ok


def score_item(
    http: httpx.Client,
    sandbox: Sandbox,
    item: dict[str, Any],
    model: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    started = time.perf_counter()
    single = http.post("/v1/chat/completions", json=body(item, model, args.max_tokens))
    single.raise_for_status()
    single_s = time.perf_counter() - started
    reply = single.json()["choices"][0]["message"]["content"] or ""
    single_code = extract_code(reply, item["entry_point"])
    started = time.perf_counter()
    loop_body = body(item, model, args.max_tokens, max_attempts=args.max_attempts)
    looped = http.post("/v1/chat/completions", json=loop_body)
    looped.raise_for_status()
    loop_s = time.perf_counter() - started
    report = looped.json()["strata"]["code"]
    attempts = report["attempts"]
    chosen = attempts[report["chosen"] - 1]
    return {
        "id": item["task_id"],
        "single_shot": hidden_pass(sandbox, item, single_code),
        "loop": hidden_pass(sandbox, item, chosen["code"]),
        "first_attempt_same": attempts[0]["code"] == single_code,
        "visible_passed": report["passed"],
        "checks": report["checks"] - 1,  # less the "function exists" check
        "attempts": len(attempts),
        "single_seconds": round(single_s, 2),
        "loop_seconds": round(sum(a["seconds"] for a in attempts), 2),
        "loop_wall_seconds": round(loop_s, 2),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    single = sum(r["single_shot"] for r in rows) / n
    loop = sum(r["loop"] for r in rows) / n
    return {
        "n": n,
        "single_shot": round(single, 4),
        "loop": round(loop, 4),
        "delta": round(loop - single, 4),
        "attempts_mean": round(sum(r["attempts"] for r in rows) / n, 3),
        "retried_share": round(sum(r["attempts"] > 1 for r in rows) / n, 4),
        "visible_passed_share": round(sum(r["visible_passed"] for r in rows) / n, 4),
        "hidden_failed_after_visible_passed": sum(
            r["visible_passed"] and not r["loop"] for r in rows
        ),
        "first_attempt_same_share": round(sum(r["first_attempt_same"] for r in rows) / n, 4),
        "single_seconds_median": median([r["single_seconds"] for r in rows]),
        "loop_seconds_median": median([r["loop_seconds"] for r in rows]),
        "loop_seconds_mean": round(sum(r["loop_seconds"] for r in rows) / n, 2),
    }


def table(results: dict[str, Any]) -> str:
    head = f"{'model':<8}{'n':>5}{'single':>9}{'loop':>8}{'delta':>8}{'attempts':>10}"
    rows = [head + f"{'loop s (median)':>17}{'published':>11}"]
    for model, s in results.items():
        rows.append(
            f"{model:<8}{s['n']:>5}{s['single_shot']:>9.3f}{s['loop']:>8.3f}"
            f"{s['delta'] * 100:>+7.1f}p{s['attempts_mean']:>10.2f}"
            f"{s['loop_seconds_median']:>17.1f}{PUBLISHED.get(model, float('nan')):>11.3f}"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/code/humaneval.dev.jsonl")
    )
    parser.add_argument("--limit", type=int, default=None, help="items (seeded shuffle)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", action="append", help="repeatable; default small and big")
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    models = args.model or ["small", "big"]
    items = load(args.data, args.limit, args.seed)
    home = Path(tempfile.mkdtemp(prefix="strata-code-bench-"))
    tools: dict[str, Any] = {"tools": {"sandbox": True}}  # a feature's settings section
    settings = Settings(home=home, bundled_models=False, models=bundled_here(home, models), **tools)
    engine = Engine(settings)
    cache = ModelCallCache(args.cache)
    cache.install(engine, {m: model_id(m) for m in models})
    sandbox = Sandbox()
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    print(f"HumanEval dev, {len(items)} items (seed {args.seed}), models {models}", file=sys.stderr)
    with (
        Server(create_app(settings, engine)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=7200) as http,
    ):
        for n, item in enumerate(items, 1):
            for model in models:
                row = score_item(http, sandbox, item, model, args)
                rows[model].append(row)
                print(
                    f"  [{n}/{len(items)}] {model} {item['task_id']}: single "
                    f"{'pass' if row['single_shot'] else 'fail'}, loop "
                    f"{'pass' if row['loop'] else 'fail'} in {row['attempts']} attempt(s), "
                    f"{row['loop_wall_seconds']:.0f} s (cache {cache.hits} hit, "
                    f"{cache.misses} new)",
                    file=sys.stderr,
                    flush=True,
                )
            if args.json:  # partial results survive an interrupted run
                save(args, rows, items, cache)
    results = {m: summarise(r) for m, r in rows.items() if r}
    print(table(results))
    print(f"target: {TARGET}; published pass@1 (full precision): {PUBLISHED}")
    if args.json:
        save(args, rows, items, cache)


def save(
    args: argparse.Namespace,
    rows: dict[str, list[dict[str, Any]]],
    items: list[dict[str, Any]],
    cache: ModelCallCache,
) -> None:
    found = sum(bool(examples_from_prompt(i["prompt"], i["entry_point"])) for i in items)
    write_json(
        args.json,
        {
            **{m: summarise(r) for m, r in rows.items() if r},
            "items": rows,
            "n_items": len(items),
            "seed": args.seed,
            "max_attempts": args.max_attempts,
            "examples_found_share": round(found / len(items), 4),
            "cache": {"hits": cache.hits, "misses": cache.misses},
            "published": PUBLISHED,
        },
    )


if __name__ == "__main__":
    main()
