"""Sanity check of the tools domain on a local model, with llama_cpp directly (no server).

Renders BFCL items with the GGUF's own template and the tools, decodes three ways, parses,
and scores with the BFCL AST checker:

- ``free``: no grammar (what a plain prompt gets; shows the fenced-JSON fallback);
- ``auto``: free text until the model writes ``<tool_call>``, then the call grammar;
- ``required``: the call grammar from the first token.

It is the engine's recipe in miniature (see ``ToolDecoding``); the benchmark proper goes
through the HTTP API (``bench/tools.py``, once the server is wired).

    python bench/tools_local_sanity.py --model PATH.gguf --per-category 2 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from strata.core.tools.grammar import plan_tool_decoding, tool_specs
from strata.core.tools.parsing import parse_tool_calls
from strata.core.tools.template import ToolPromptRenderer
from strata.features.tools.bfcl import calls_from_openai, check_item, openai_tools

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")


def pick(path: Path, per_category: int) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    chosen: list[dict[str, Any]] = []
    for category in CATEGORIES:
        chosen += [i for i in items if i["category"] == category][:per_category]
    return chosen


def generate(llm: Any, prompt: str, max_tokens: int, **kwargs: Any) -> str:
    out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, **kwargs)
    return str(out["choices"][0]["text"])


def decode(llm: Any, renderer: ToolPromptRenderer, item: dict[str, Any], mode: str) -> str:
    from llama_cpp import StoppingCriteriaList
    from llama_cpp.llama_grammar import LlamaGrammar

    specs = tool_specs(openai_tools(item["functions"]))
    prompt = renderer.render(item["messages"], specs)
    if mode == "free":
        return generate(llm, prompt, 256)
    plan = plan_tool_decoding(specs, "auto" if mode == "auto" else "required")
    if plan.grammar is not None:
        return generate(llm, prompt, 256, grammar=LlamaGrammar.from_string(plan.grammar))
    assert plan.trigger is not None and plan.continuation is not None
    trigger = llm.tokenize(plan.trigger.encode(), add_bos=False, special=True)
    hit: list[bool] = []

    def on_trigger(tokens: Any, _logits: Any) -> bool:
        # <tool_call> is one special token in Qwen's vocabulary: stop right after it.
        if list(tokens[-len(trigger) :]) == trigger:
            hit.append(True)
        return bool(hit)

    text = generate(llm, prompt, 256, stopping_criteria=StoppingCriteriaList([on_trigger]))
    if not hit:
        return text
    before = text.removesuffix(plan.trigger)
    rest = generate(
        llm,
        prompt + before + plan.trigger,
        256,
        grammar=LlamaGrammar.from_string(plan.continuation),
    )
    return before + plan.trigger + rest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tools/bfcl.dev.jsonl"))
    parser.add_argument("--per-category", type=int, default=2)
    parser.add_argument("--modes", default="free,auto,required")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from llama_cpp import Llama

    llm = Llama(model_path=str(args.model), n_ctx=4096, n_threads=args.threads, verbose=False)
    template = str(llm.metadata["tokenizer.chat_template"])
    renderer = ToolPromptRenderer(template, eos_token="<|im_end|>")
    items = pick(args.data, args.per_category)
    results: dict[str, Any] = {}
    for mode in args.modes.split(","):
        started = time.monotonic()
        passed, attempted, parsed = Counter[str](), 0, 0
        sources: Counter[str] = Counter()
        rows = []
        for item in items:
            text = decode(llm, renderer, item, mode)
            names = [t["function"]["name"] for t in openai_tools(item["functions"])]
            out = parse_tool_calls(text, names)
            calls = calls_from_openai(out.tool_calls)
            verdict = check_item(item, calls)
            tried = out.source != "none" or "<tool_call>" in text or "```" in text
            attempted += tried
            parsed += tried and bool(out.tool_calls) and calls is not None
            sources[out.source] += 1
            passed[item["category"]] += verdict.valid
            rows.append(
                {"id": item["id"], "ok": verdict.valid, "error": verdict.error, "text": text}
            )
        per = {c: passed[c] / max(1, sum(i["category"] == c for i in items)) for c in CATEGORIES}
        results[mode] = {
            **per,
            "accuracy": sum(passed.values()) / len(items),
            "parsed_share": parsed / attempted if attempted else 1.0,
            "sources": dict(sources),
            "seconds": round(time.monotonic() - started, 1),
            "items": rows,
        }
        print(
            f"{mode:9s} accuracy {results[mode]['accuracy']:.2f}  "
            + "  ".join(f"{c} {per[c]:.2f}" for c in CATEGORIES)
            + f"  parsed {results[mode]['parsed_share']:.2f}  sources {dict(sources)}"
            + f"  {results[mode]['seconds']}s"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
