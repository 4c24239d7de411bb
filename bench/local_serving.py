"""The serving parts of ``bench/local_speed.py``: aggregate tokens/s under concurrency (strata
vs llama-cpp-python's own server), time to first token on a repeated long prefix (the prompt
cache), and speculative decoding (the 1.5B model with and without the 0.5B draft).

Every client here is stdlib ``http.client`` on threads, parsing JSON only for the final usage
event: on two cores the client's CPU is charged to whichever server it measures.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from _common import ProcessGroup, wait_http

PREFIX_RULES = 70  # ~1,000 tokens of system prompt
# A chunk with text, in either JSON spacing: llama-cpp-python's server writes ``"content": "``.
CONTENT = re.compile(rb'"content": ?"[^"]')


def open_stream(url: str, body: dict[str, Any], timeout: float) -> http.client.HTTPResponse:
    """POST a streamed chat completion on a fresh connection (the other sides of a race run
    longer than keep-alive lasts); a non-200 ends the benchmark with the server's answer."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    conn.request(
        "POST",
        parts.path + "/chat/completions",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"{url} answered {response.status}: {response.read()!r}")
    return response


def stream_chat(url: str, body: dict[str, Any]) -> tuple[float, int, float]:
    """One streamed chat completion: (time to first content, completion tokens, total s)."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    response = open_stream(url, body, timeout=1800)
    ttft, tokens, pieces = None, 0, 0
    for line in response:
        if CONTENT.search(line):
            pieces += 1
            if ttft is None:
                ttft = time.perf_counter() - start
        if line.startswith(b"data: {") and b'"usage":{' in line:
            usage = json.loads(line[6:])["usage"]
            if usage:
                tokens = int(usage["completion_tokens"])
    response.close()
    total = time.perf_counter() - start
    # llama-cpp-python's server sends no usage when streaming: one content chunk per token.
    return ttft or total, tokens or pieces, total


def aggregate_tps(url: str, model: str, prompts: list[str], max_tokens: int) -> float:
    """Send one request per prompt at once; generated tokens of all of them over wall time."""
    counts: list[int] = []
    errors: list[BaseException] = []

    def one(prompt: str) -> None:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        try:
            counts.append(stream_chat(url, body)[1])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.perf_counter() - start)


def concurrent_prompts(round_: int, c: int) -> list[str]:
    """``c`` distinct short prompts (no shared prefix beyond the chat template)."""
    subjects = ["a queue", "a heap", "a trie", "a graph", "a stack", "a set", "a map", "a list"]
    return [f"[{round_}.{i}] Explain {subjects[i % 8]} in data structures." for i in range(c)]


def prefix_messages(round_: int, question: str) -> list[dict[str, str]]:
    """A ~1,000-token system prompt unique to the round, then a question."""
    rules = " ".join(
        f"Rule {i} of set {round_}: answer questions about item {i} briefly and politely."
        for i in range(PREFIX_RULES)
    )
    return [{"role": "system", "content": rules}, {"role": "user", "content": question}]


def prefix_ttft(url: str, model: str, round_: int) -> tuple[float, float]:
    """TTFT of a long-prefix request, then of the same prefix with another question after
    two unrelated requests were served in between."""

    def ask(messages: list[dict[str, str]]) -> float:
        body = {"model": model, "messages": messages, "max_tokens": 4, "temperature": 0}
        return stream_chat(url, body)[0]

    first = ask(prefix_messages(round_, "What does rule 3 say?"))
    for other in concurrent_prompts(round_ + 1000, 2):
        ask([{"role": "user", "content": other}])
    second = ask(prefix_messages(round_, "What does rule 9 say?"))
    return first, second


SPECULATIVE_PROMPTS = {
    "chat": [{"role": "user", "content": "Explain in a few sentences why the sky is blue."}],
    "code": [
        {
            "role": "user",
            "content": "Write a Python function that merges two sorted lists, with a docstring.",
        }
    ],
    "template": [
        {
            "role": "system",
            "content": "You are a code reviewer. Answer with a short list of concrete issues.",
        },
        {"role": "user", "content": "def add(a, b):\n    return a - b\n"},
    ],
}


def decode_tps(url: str, model: str, messages: list[dict[str, str]], max_tokens: int) -> float:
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    ttft, tokens, total = stream_chat(url, body)
    return (tokens - 1) / (total - ttft) if tokens > 1 and total > ttft else 0.0


def start_llama_cpp_server(
    group: ProcessGroup, name: str, path: Path, port: int, n_ctx: int, threads: int
) -> str:
    """llama-cpp-python's own server on the same GGUF and threads. ``interrupt_requests`` off:
    by default a new request cancels the running one, which would not be a fair race."""
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        name,
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_batch",
        "512",
        "--interrupt_requests",
        "False",
        "--port",
        str(port),
    ]
    server = group.start(f"llama_cpp_server_{name}", argv)
    wait_http(f"http://127.0.0.1:{port}/v1/models", server, timeout_s=300)
    return f"http://127.0.0.1:{port}/v1"


def start_llama_server(
    group: ProcessGroup,
    binary: Path,
    name: str,
    path: Path,
    port: int,
    n_ctx: int,
    threads: int,
    slots: int,
) -> str:
    """llama.cpp's own ``llama-server`` (built from the source llama-cpp-python vendors,
    ``scripts/build-llama-server.sh``) with ``slots`` parallel sequences of ``n_ctx`` each,
    continuous batching on (its default): the engine's own answer to concurrent streams."""
    argv = [str(binary), "--model", str(path), "--alias", name, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--ctx-size", str(n_ctx * slots), "--parallel", str(slots)]
    argv += ["--threads", str(threads), "--batch-size", "512", "--no-webui"]
    server = group.start(f"llama_server_{name}", argv)
    wait_http(f"http://127.0.0.1:{port}/v1/models", server, timeout_s=300)
    return f"http://127.0.0.1:{port}/v1"


def speculative_direct(
    target_path: Path, draft_path: Path, n_ctx: int, threads: int, k: int
) -> tuple[Any, Any]:
    """In-process runners for the 1.5B model, plain greedy vs drafted by the 0.5B (the server
    around both is the same, so the comparison needs no HTTP); each returns (tokens/s,
    acceptance) and checks the drafted output equals the plain one."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from strata.core.models.llama_draft import Speculator

    kwargs: dict[str, Any] = {"n_ctx": n_ctx, "n_threads": threads, "n_batch": 512}
    target = llama_cpp.Llama(model_path=str(target_path), verbose=False, **kwargs)
    draft = llama_cpp.Llama(model_path=str(draft_path), verbose=False, **kwargs)
    fmt = Jinja2ChatFormatter(
        target.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token=""
    )
    last: dict[str, list[int]] = {}

    def tokens_of(messages: list[dict[str, str]]) -> list[int]:
        prompt = fmt(messages=messages).prompt.encode()
        return list(target.tokenize(prompt, add_bos=False, special=True))

    def timed(stream: Any, max_tokens: int, key: str) -> float:
        out: list[int] = []
        start = 0.0
        for token in stream:
            if not out:
                start = time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(target._model.vocab, token):
                break
            out.append(token)
            if len(out) >= max_tokens:
                break
        if key in last and last[key] != out:
            print(f"speculative output differs from greedy on {key}", file=sys.stderr)
        last[key] = out
        return (len(out) - 1) / (time.perf_counter() - start) if len(out) > 1 else 0.0

    def plain(messages: list[dict[str, str]], max_tokens: int, key: str) -> float:
        target.reset()
        stream = target.generate(tokens_of(messages), temp=0, top_k=40, top_p=1.0, min_p=0.0)
        return timed(stream, max_tokens, key)

    def drafted(messages: list[dict[str, str]], max_tokens: int, key: str) -> tuple[float, float]:
        target.reset()
        draft.reset()
        speculator = Speculator(draft, k)
        tps = timed(speculator.generate(target, tokens_of(messages)), max_tokens, key)
        return tps, speculator.stats.acceptance

    return plain, drafted


def print_serving_tables(results: dict[str, dict[str, Any]], out: Console) -> None:
    conc = Table(title="aggregate generated tokens/s (medians; same run)")
    cols = ("model", "c", "strata", "one at a time", "llama_cpp.server", "ratio")
    for col in (*cols, "llama-server", "ratio", "vs c=1"):
        conc.add_column(col, justify="right")
    for name, r in results.items():
        base = r["concurrent"].get("1", {}).get("strata_tps")
        for c, row in r["concurrent"].items():
            s_tps, l_tps = row["strata_tps"], row["llama_cpp_server_tps"]
            native = row.get("llama_server_tps")
            conc.add_row(
                name,
                c,
                f"{s_tps:.1f}",
                f"{row['strata_single_tps']:.1f}",
                f"{l_tps:.1f}",
                f"{s_tps / l_tps:.2f}x" if l_tps else "-",
                f"{native:.1f}" if native else "-",
                f"{s_tps / native:.2f}x" if native else "-",
                f"{s_tps / base:.2f}x" if base else "-",
            )
    out.print(conc)
    pc = Table(title="prompt cache: TTFT of a repeated ~1,000-token prefix (s, medians)")
    for col in ("model", "first", "second", "speedup"):
        pc.add_column(col, justify="right")
    for name, r in results.items():
        p = r["prefix_cache"]
        pc.add_row(
            name, f"{p['first_ttft_s']:.2f}", f"{p['second_ttft_s']:.2f}", f"{p['speedup']:.1f}x"
        )
    out.print(pc)
    if "speculative" in results.get("big", {}):
        sp = Table(title="big, greedy: plain vs drafted by small (tokens/s, medians)")
        for col in ("prompt", "plain", "drafted", "speedup", "acceptance"):
            sp.add_column(col, justify="right")
        for kind, row in results["big"]["speculative"].items():
            sp.add_row(
                kind,
                f"{row['plain_tps']:.2f}",
                f"{row['draft_tps']:.2f}",
                f"{row['speedup']:.2f}x",
                f"{row['acceptance']:.0%}",
            )
        out.print(sp)
