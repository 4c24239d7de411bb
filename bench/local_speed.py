"""Local model speed through strata's HTTP API vs llama-cpp-python called directly.

Same GGUF files, same prompts, same greedy settings, one process at a time on the cores
(the idle side waits), rounds interleaved so machine noise hits both sides alike. Reports
medians over rounds. Also measures strata with ``logprobs=true, top_logprobs=5`` and, for
reference, llama-cpp-python's own logprobs path (``logits_all=True``), which strata avoids.

Then, in the same run: aggregate generated tokens/s at concurrency 1, 2, 4, 8, strata vs
``python -m llama_cpp.server`` (same GGUF, same threads); time to first token of a repeated
~1,000-token prefix with two other requests served in between (strata's prompt cache); and
for the big model, greedy tokens/s with and without the small model drafting (speculative
decoding), with the draft's acceptance rate.

    python bench/local_speed.py --json OUT [--models small,big] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _common import ProcessGroup, free_port, interrupts_end_the_run, median, wait_http, write_json
from local_serving import (
    CONTENT,
    SPECULATIVE_PROMPTS,
    aggregate_tps,
    concurrent_prompts,
    open_stream,
    prefix_ttft,
    print_serving_tables,
    speculative_direct,
    start_llama_cpp_server,
    start_llama_server,
)
from strata.core import catalog
from strata.core.settings import default_home

BUNDLED = {"small": "qwen2.5-coder-0.5b-instruct", "big": "qwen2.5-coder-1.5b-instruct"}
TOPICS = ["lighthouses", "glaciers", "beekeeping", "railways", "tides", "volcanoes", "paper"]
N_CTX = 2048
BATCH_SLOTS = 4
LLAMA_SERVER = Path(__file__).parent / ".cache" / "llama-server"
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
            for line in open_stream(url, body, timeout=600):
                if CONTENT.search(line):
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
        lines += ["max_queue = 64", f"batch_slots = {BATCH_SLOTS}"]
        lines += [f"[models.{name}-single]", f'path = "{path}"', f"n_ctx = {N_CTX}"]
        lines += ['load = "startup"', "max_queue = 64", "batch_slots = 1"]
    config.write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "strata", "serve", "--config", str(config), "--port", str(port)]
    server = group.start("strata", [*argv, "--log-level", "warning"])
    wait_http(f"http://127.0.0.1:{port}/health", server, timeout_s=300)  # 503 while loading


def single_stream(
    name: str, path: Path, url: str, args: argparse.Namespace, progress: Progress
) -> dict[str, float]:
    """Generated and prompt tokens/s, strata vs direct, with and without logprobs."""
    sides = {
        "direct": direct_runner(path, logits_all=False),
        "strata": strata_runner(url, name, logprobs=False),
        "strata_logprobs": strata_runner(url, name, logprobs=True),
    }
    if not args.quick:
        sides["llama_cpp_logprobs"] = direct_runner(path, logits_all=True)
    samples: dict[str, list[Sample]] = {side: [] for side in sides}
    task = progress.add_task(f"{name} single stream", total=args.rounds * len(sides))
    for run in sides.values():  # warm-up: load pages, fill caches
        run(prompt_for(-1, "warm-up"), 8)
    for r in range(args.rounds):
        topic = TOPICS[r % len(TOPICS)]
        for side, run in sides.items():
            samples[side].append(run(prompt_for(r, topic), args.max_tokens))
            progress.advance(task)

    def med(side: str, attr: str) -> float:
        got = samples.get(side)
        return round(median([getattr(s, attr) for s in got]), 2) if got else float("nan")

    return {
        "direct_gen_tps": med("direct", "gen_tps"),
        "strata_gen_tps": med("strata", "gen_tps"),
        "direct_prompt_tps": med("direct", "prompt_tps"),
        "strata_prompt_tps": med("strata", "prompt_tps"),
        "strata_gen_tps_logprobs": med("strata_logprobs", "gen_tps"),
        "llama_cpp_gen_tps_logprobs": med("llama_cpp_logprobs", "gen_tps"),
    }


def concurrency(
    name: str, urls: dict[str, str], args: argparse.Namespace, progress: Progress
) -> dict[str, dict[str, float]]:
    """Aggregate generated tokens/s with c requests at once, sides interleaved per round."""
    levels = [int(c) for c in args.concurrency.split(",")]
    got: dict[tuple[int, str], list[float]] = {(c, s): [] for c in levels for s in urls}
    task = progress.add_task(f"{name} concurrent", total=args.rounds * len(got))
    for r in range(args.rounds):
        for c in levels:
            for side, url in urls.items():
                model = f"{name}-single" if side == "strata_single" else name
                tps = aggregate_tps(url, model, concurrent_prompts(r, c), args.conc_tokens)
                got[(c, side)].append(tps)
                progress.advance(task)
    return {
        str(c): {f"{side}_tps": round(median(got[(c, side)]), 2) for side in urls} for c in levels
    }


def prefix_cache(
    name: str, url: str, args: argparse.Namespace, progress: Progress
) -> dict[str, float]:
    task = progress.add_task(f"{name} prefix cache", total=args.rounds)
    firsts, seconds = [], []
    for r in range(args.rounds):
        first, second = prefix_ttft(url, name, r)
        firsts.append(first)
        seconds.append(second)
        progress.advance(task)
    f, s = median(firsts), median(seconds)
    return {"first_ttft_s": round(f, 3), "second_ttft_s": round(s, 3), "speedup": round(f / s, 2)}


def speculative(
    paths: dict[str, Path], args: argparse.Namespace, progress: Progress
) -> dict[str, dict[str, float]]:
    plain, drafted = speculative_direct(
        paths["big"], paths["small"], N_CTX, os.cpu_count() or 1, args.draft_tokens
    )
    kinds = list(SPECULATIVE_PROMPTS)
    got: dict[str, dict[str, list[float]]] = {
        k: {"plain_tps": [], "draft_tps": [], "acceptance": []} for k in kinds
    }
    task = progress.add_task("big speculative", total=args.rounds * len(kinds))
    for _ in range(args.rounds):
        for kind in kinds:
            messages = SPECULATIVE_PROMPTS[kind]
            got[kind]["plain_tps"].append(plain(messages, args.max_tokens, kind))
            tps, acceptance = drafted(messages, args.max_tokens, kind)
            got[kind]["draft_tps"].append(tps)
            got[kind]["acceptance"].append(acceptance)
            progress.advance(task)
    out = {k: {m: round(median(v), 3) for m, v in got[k].items()} for k in kinds}
    for row in out.values():
        row["speedup"] = round(row["draft_tps"] / row["plain_tps"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write results here")
    parser.add_argument("--models", default="small,big")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--conc-tokens", type=int, default=64, help="max_tokens per request")
    parser.add_argument("--draft-tokens", type=int, default=4)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 rounds, 32 tokens, concurrency 1,2,4, no llama-cpp logprobs reference",
    )
    parser.add_argument(
        "--llama-server",
        type=Path,
        default=LLAMA_SERVER if LLAMA_SERVER.is_file() else None,
        help="llama.cpp's llama-server binary (scripts/build-llama-server.sh); default: "
        "bench/.cache/llama-server if built",
    )
    parser.add_argument(
        "--home", type=Path, default=Path(os.environ.get("STRATA_HOME") or default_home())
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.max_tokens, args.conc_tokens = 3, 32, 24
        args.concurrency = "1,2,4"

    paths = {}
    for name in args.models.split(","):
        model = catalog.lookup(BUNDLED[name])
        paths[name] = catalog.assemble(model, args.home)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    results: dict[str, dict[str, Any]] = {}
    threads = os.cpu_count() or 1
    with interrupts_end_the_run(), ProcessGroup(Path(tempfile.mkdtemp())) as group:
        start_strata(group, paths, port, group.log_dir)
        with Progress(console=console) as progress:
            for name, path in paths.items():
                results[name] = single_stream(name, path, url, args, progress)
                other = start_llama_cpp_server(group, name, path, free_port(), N_CTX, threads)
                urls = {"strata": url, "strata_single": url, "llama_cpp_server": other}
                if args.llama_server is not None:
                    urls["llama_server"] = start_llama_server(
                        group,
                        args.llama_server,
                        name,
                        path,
                        free_port(),
                        N_CTX,
                        threads,
                        BATCH_SLOTS,
                    )
                results[name]["concurrent"] = concurrency(name, urls, args, progress)
                for _ in range(len(urls) - 2):  # free their memory and cores for the next model
                    group.processes.pop().stop()
                results[name]["prefix_cache"] = prefix_cache(name, url, args, progress)
                write_json(args.json, results)  # a long run keeps what it measured so far
            if {"small", "big"} <= set(paths):
                results["big"]["speculative"] = speculative(paths, args, progress)
    write_json(args.json, results)
    print_tables(results)


def print_tables(results: dict[str, dict[str, Any]]) -> None:
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
    out = Console(width=160)
    out.print(table)
    print_serving_tables(results, out)


if __name__ == "__main__":
    main()
