"""Local model speed through strata's HTTP API vs llama-cpp-python called directly.

Same GGUF files, same prompts, same greedy settings, one process at a time on the cores
(the idle side waits), rounds interleaved so machine noise hits both sides alike. Reports
medians over rounds. Also measures strata with ``logprobs=true, top_logprobs=5`` and, for
reference, llama-cpp-python's own logprobs path (``logits_all=True``), which strata avoids.

    python bench/local_speed.py --json OUT [--models small,big] [--rounds 3] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _common import ProcessGroup, free_port, interrupts_end_the_run, median, wait_http, write_json
from strata.core import catalog
from strata.core.settings import default_home

BUNDLED = {"small": "qwen2.5-coder-0.5b-instruct", "big": "qwen2.5-coder-1.5b-instruct"}
TOPICS = ["lighthouses", "glaciers", "beekeeping", "railways", "tides", "volcanoes", "paper"]
N_CTX = 2048
console = Console(stderr=True)


def prompt_for(round_: int, topic: str) -> list[dict[str, str]]:
    """A ~300-token prompt that differs from the first token on, so no prefix cache hits."""
    facts = " ".join(
        f"Fact {i} about {topic}: it matters for reason number {i}." for i in range(25)
    )
    return [
        {"role": "user", "content": f"[{round_}:{topic}] {facts}\nWrite a long essay on {topic}."}
    ]


class Sample:
    def __init__(self, prompt_tokens: int, completion_tokens: int, ttft: float, total: float):
        self.prompt_tps = prompt_tokens / ttft
        self.gen_tps = (completion_tokens - 1) / (total - ttft) if completion_tokens > 1 else 0.0


def timed_stream(events: Iterator[tuple[str, dict[str, Any] | None]]) -> Sample:
    """Consume (text, usage) events; time the first text and the end."""
    start = time.perf_counter()
    ttft = None
    usage: dict[str, Any] = {}
    for text, u in events:
        if text and ttft is None:
            ttft = time.perf_counter() - start
        if u:
            usage = u
    total = time.perf_counter() - start
    return Sample(usage["prompt_tokens"], usage["completion_tokens"], ttft or total, total)


def direct_runner(path: Path, logits_all: bool) -> Callable[[list[dict[str, str]], int], Sample]:
    """llama-cpp-python with nothing in between: ``Llama.generate`` on the same chat tokens.

    With ``logits_all`` it is llama-cpp-python's own logprobs path instead
    (``create_chat_completion(logprobs=True, top_logprobs=5)``), one chunk per token."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=N_CTX,
        n_threads=os.cpu_count(),
        n_batch=512,
        logits_all=logits_all,
        verbose=False,
    )
    fmt = Jinja2ChatFormatter(
        llm.metadata["tokenizer.chat_template"],
        eos_token=llm._model.token_get_text(llm.token_eos()),
        bos_token="",
    )

    def run(messages: list[dict[str, str]], max_tokens: int) -> Sample:
        tokens = llm.tokenize(fmt(messages=messages).prompt.encode(), add_bos=False, special=True)

        def plain() -> Iterator[tuple[str, dict[str, Any] | None]]:
            n = 0
            for token in llm.generate(tokens, temp=0, top_k=40, top_p=1.0, min_p=0.0):
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    break
                n += 1
                yield "t", None
                if n >= max_tokens:
                    break
            yield "", {"prompt_tokens": len(tokens), "completion_tokens": n}

        def with_logprobs() -> Iterator[tuple[str, dict[str, Any] | None]]:
            n = 0
            for chunk in llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=0,
                stream=True,
                logprobs=True,
                top_logprobs=5,
            ):
                text = chunk["choices"][0]["delta"].get("content") or ""  # type: ignore[index]
                n += bool(text)
                yield text, None
            yield "", {"prompt_tokens": len(tokens), "completion_tokens": n}

        return timed_stream(with_logprobs() if logits_all else plain())

    return run


def strata_runner(
    url: str, model: str, logprobs: bool
) -> Callable[[list[dict[str, str]], int], Sample]:
    """Streams from strata with a deliberately thin client (stdlib http.client, JSON parsed
    only for the final usage event): on 2 cores the client's own CPU would otherwise be
    charged to strata, since it competes with llama.cpp's threads."""
    parts = urlsplit(url)

    def run(messages: list[dict[str, str]], max_tokens: int) -> Sample:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if logprobs:
            body.update(logprobs=True, top_logprobs=5)

        def events() -> Iterator[tuple[str, dict[str, Any] | None]]:
            # A fresh connection each time: the other sides run longer than keep-alive lasts.
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=600)
            conn.request(
                "POST",
                parts.path + "/chat/completions",
                body=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            if response.status != 200:
                raise SystemExit(f"strata answered {response.status}: {response.read()!r}")
            for line in response:
                if b'"content":"' in line and b'"content":""' not in line:
                    yield "t", None
                elif line.startswith(b"data: {") and b'"usage":{' in line:
                    yield "", json.loads(line[6:])["usage"]

        return timed_stream(events())

    return run


def start_strata(group: ProcessGroup, paths: dict[str, Path], port: int, work: Path) -> None:
    config = work / "strata.toml"
    lines = ["bundled_models = false"]
    for name, path in paths.items():
        lines += [f"[models.{name}]", f'path = "{path}"', f"n_ctx = {N_CTX}", 'load = "startup"']
    config.write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "strata", "serve", "--config", str(config), "--port", str(port)]
    server = group.start("strata", [*argv, "--log-level", "warning"])
    wait_http(f"http://127.0.0.1:{port}/health", server, timeout_s=300)  # 503 while loading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write results here")
    parser.add_argument("--models", default="small,big")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--home", type=Path, default=Path(os.environ.get("STRATA_HOME") or default_home())
    )
    args = parser.parse_args()

    paths = {}
    for name in args.models.split(","):
        model = catalog.lookup(BUNDLED[name])
        paths[name] = catalog.assemble(model, args.home)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    results: dict[str, dict[str, float]] = {}
    with interrupts_end_the_run(), ProcessGroup(Path(tempfile.mkdtemp())) as group:
        start_strata(group, paths, port, group.log_dir)
        with Progress(console=console) as progress:
            for name, path in paths.items():
                sides = {
                    "direct": direct_runner(path, logits_all=False),
                    "strata": strata_runner(url, name, logprobs=False),
                    "strata_logprobs": strata_runner(url, name, logprobs=True),
                    "llama_cpp_logprobs": direct_runner(path, logits_all=True),
                }
                samples: dict[str, list[Sample]] = {side: [] for side in sides}
                task = progress.add_task(f"{name}", total=args.rounds * len(sides))
                for run in sides.values():  # warm-up: load pages, fill caches
                    run(prompt_for(-1, "warm-up"), 8)
                for r in range(args.rounds):
                    topic = TOPICS[r % len(TOPICS)]
                    for side, run in sides.items():
                        samples[side].append(run(prompt_for(r, topic), args.max_tokens))
                        progress.advance(task)

                def med(side: str, attr: str, got: dict[str, list[Sample]] = samples) -> float:
                    return round(median([getattr(s, attr) for s in got[side]]), 2)

                results[name] = {
                    "direct_gen_tps": med("direct", "gen_tps"),
                    "strata_gen_tps": med("strata", "gen_tps"),
                    "direct_prompt_tps": med("direct", "prompt_tps"),
                    "strata_prompt_tps": med("strata", "prompt_tps"),
                    "strata_gen_tps_logprobs": med("strata_logprobs", "gen_tps"),
                    "llama_cpp_gen_tps_logprobs": med("llama_cpp_logprobs", "gen_tps"),
                }
                del sides

    table = Table(title="local speed (tokens/s, medians)")
    for col in (
        "model",
        "gen direct",
        "gen strata",
        "ratio",
        "prompt direct",
        "prompt strata",
        "ratio",
        "gen strata+logprobs",
        "vs no logprobs",
        "llama-cpp logprobs",
    ):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['direct_gen_tps']:.1f}",
            f"{r['strata_gen_tps']:.1f}",
            f"{r['strata_gen_tps'] / r['direct_gen_tps']:.1%}",
            f"{r['direct_prompt_tps']:.0f}",
            f"{r['strata_prompt_tps']:.0f}",
            f"{r['strata_prompt_tps'] / r['direct_prompt_tps']:.1%}",
            f"{r['strata_gen_tps_logprobs']:.1f}",
            f"{r['strata_gen_tps_logprobs'] / r['strata_gen_tps']:.1%}",
            f"{r['llama_cpp_gen_tps_logprobs']:.1f}",
        )
    Console(width=160).print(table)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
