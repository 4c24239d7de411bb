"""Why BFCL's parallel items get one call: what the model wants right after its first call.

For each parallel item the prompt (GGUF template + tools) is followed by the first expected
call, written both ways the Coder models write calls: a native ``<tool_call>`` block (then
a newline, where the grammar allows another block or the end of the turn) and a fenced
```` ```json ```` object. One greedy step shows the model's next token and its top choices:
end of turn / a closing fence means the model itself stops at one call, whatever the
grammar allows.

    python bench/tools_parallel_probe.py --model PATH.gguf [--model PATH2.gguf] --items 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from strata.core.tools.grammar import tool_specs
from strata.core.tools.template import ToolPromptRenderer
from strata.features.tools.bfcl import openai_tools


def first_call(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The answer key's first call, each argument at its first allowed value."""
    expected = item["ground_truth"][0]
    name = next(iter(expected))
    arguments = {k: v[0] for k, v in expected[name].items() if v and v[0] != ""}
    return name.replace(".", "_"), arguments


def probe(llm: Any, renderer: ToolPromptRenderer, item: dict[str, Any]) -> dict[str, Any]:
    prompt = renderer.render(item["messages"], tool_specs(openai_tools(item["functions"])))
    name, arguments = first_call(item)
    call = {"name": name, "arguments": arguments}
    after = {
        "native": f"<tool_call>\n{json.dumps(call)}\n</tool_call>\n",
        "fenced": f"```json\n{json.dumps(call, indent=2)}\n",
    }
    out: dict[str, Any] = {"id": item["id"], "calls_expected": len(item["ground_truth"])}
    for form, text in after.items():
        step = llm.create_completion(prompt + text, max_tokens=1, temperature=0, logprobs=5)
        choice = step["choices"][0]
        top = choice["logprobs"]["top_logprobs"]
        out[form] = {
            "next": choice["text"] if choice["finish_reason"] == "length" else "<end of turn>",
            "top": {k: round(float(v), 3) for k, v in top[0].items()} if top else {},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tools/bfcl.dev.jsonl"))
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from llama_cpp import Llama

    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    items = [i for i in rows if i["category"] == "parallel"][: args.items]
    results: dict[str, list[dict[str, Any]]] = {}
    for path in args.model:
        llm = Llama(model_path=str(path), n_ctx=4096, n_threads=2, verbose=False, logits_all=True)
        template = str(llm.metadata["tokenizer.chat_template"])
        renderer = ToolPromptRenderer(template, eos_token="<|im_end|>")
        results[path.name] = [probe(llm, renderer, item) for item in items]
        for row in results[path.name]:
            print(
                f"{path.name} {row['id']} (expects {row['calls_expected']} calls): after a "
                f"native call -> {row['native']['next']!r}; after a fenced call -> "
                f"{row['fenced']['next']!r} {row['fenced']['top']}"
            )
        llm.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
