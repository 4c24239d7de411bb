"""The ``code`` route: the model writes a function, strata runs it on the examples it was
given, and feeds what failed back until it passes or the attempts are spent.

Why a route and not a prompt: a small model's first answer is often nearly right, and what
it gets wrong (an off-by-one, a wrong type, a crash) shows the moment the code runs on the
task's own worked examples. A traceback or "returned 3, expected 1" is feedback a model acts
on; asking it to check its own work without running it is not.

What is checked: the examples in the prompt's docstring (``code_examples``), or the tests
the request passes in ``strata.code.tests``; nothing else. Tests a benchmark keeps back are
never sent, so the loop cannot fit them. Every run is in the sandbox (a fresh bubblewrap
per attempt, ``tools.sandbox``), so the route is refused with a 400 where the sandbox is off.

Request (``model: "code"``)::

    "strata": {"code": {"tests": "assert f(1) == 2", "max_attempts": 3, "model": "small"}}

The answer is the chosen attempt's code in a ```` ```python ```` block; the response's
``strata.code`` reports each attempt (code, passed, error excerpt, time), and the ledger
bills every model call the attempts made.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from strata.core.engine import Engine, Timings
from strata.core.errors import ContextWindowExceeded, InvalidRequest
from strata.core.models.base import Chunk, GenerationRequest, Usage
from strata.core.turn import Generation, Turn, TurnResult
from strata.features.tools.code_examples import (
    Check,
    checks_from_tests,
    examples_from_prompt,
    function_name,
    harness,
    read_report,
)
from strata.features.tools.sandbox import Sandbox
from strata.features.tools.settings import CodeSettings

NAME = "code"
SYSTEM = (
    "You are an expert Python programmer. Write the complete function the user asks for, "
    "with the imports it needs, in one ```python code block. Do not add tests or example "
    "usage."
)
_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)
_ERROR_CHARS = 600


@dataclass
class Attempt:
    """One model call and one sandboxed run of what it wrote."""

    number: int
    reply: str = ""
    code: str = ""
    passed: bool = False
    checks_passed: int = 0
    error: str | None = None
    timed_out: bool = False
    model_seconds: float = 0.0
    run_seconds: float = 0.0
    usage: Usage | None = None
    feedback: str = ""

    def report(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "code": self.code,
            "passed": self.passed,
            "checks_passed": self.checks_passed,
            "error": self.error,
            "timed_out": self.timed_out,
            "seconds": round(self.model_seconds + self.run_seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
            "run_seconds": round(self.run_seconds, 3),
        }


@dataclass
class CodeTask:
    """What a request asks: the model, the attempts, the function and the checks."""

    model: str
    max_attempts: int
    entry: str | None
    checks: list[Check]
    prelude: str
    source: str = "examples"
    attempts: list[Attempt] = field(default_factory=list)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return ""


def prompt_code(text: str) -> str | None:
    """The Python in a task: its fenced block, or the whole text when it parses."""
    for block in _FENCE.findall(text):
        if "def " in block:
            return str(block)
    try:
        ast.parse(text)
    except SyntaxError:
        return None
    return text


def prelude(code: str | None, entry: str | None) -> str:
    """What the task's code gives the solution: its imports and the helpers it implements
    (HumanEval's ``decode_cyclic`` needs the prompt's ``encode_cyclic``)."""
    if code is None:
        return ""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ""
    kept = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            kept.append(ast.get_source_segment(code, node) or "")
        elif isinstance(node, ast.FunctionDef) and node.name != entry:
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            if body and not all(isinstance(n, ast.Pass) for n in body):
                kept.append(ast.get_source_segment(code, node) or "")
    return "\n\n".join(k for k in kept if k)


def extract_code(reply: str, entry: str | None) -> str:
    """The code in a reply: the last fenced block defining ``entry`` (else the last block;
    else the reply itself when it holds a ``def``)."""
    blocks = [str(b) for b in _FENCE.findall(reply)]
    if not blocks and "```" in reply:  # an unclosed fence: the answer ran out of tokens
        blocks = [reply.split("```", 1)[1].split("\n", 1)[-1]]
    if entry is not None:
        defining = [b for b in blocks if re.search(rf"def\s+{re.escape(entry)}\s*\(", b)]
        if defining:
            return defining[-1].strip("\n")
    if blocks:
        return blocks[-1].strip("\n")
    return reply.strip() if "def " in reply else ""


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _ERROR_CHARS else "..." + text[-_ERROR_CHARS:]


def feedback(task: CodeTask, attempt: Attempt, results: list[dict[str, Any]]) -> str:
    """What the model reads after a failed attempt: each failing example, with what came
    back or the traceback's last lines."""
    if attempt.error is not None and not results:
        return (
            f"Running your code failed:\n{attempt.error}\n\n"
            "Fix it. Answer with the complete corrected function in one ```python block."
        )
    lines = []
    for check, result in zip(task.checks, results, strict=False):
        if result.get("passed"):
            continue
        if check.statement:
            what = f"- `{check.source}` failed"
        else:
            what = f"- `{check.call}` should be `{check.expected}`"
        if "error" in result:
            lines.append(f"{what}; it raised:\n{_excerpt(result['error'])}")
        else:
            lines.append(f"{what}, but it returned `{result.get('got', '')}`")
    failed = len(lines)
    return (
        f"Your function fails {failed} of the {len(task.checks)} checks:\n"
        + "\n".join(lines)
        + "\n\nFix the function. Answer with the complete corrected function in one "
        "```python block."
    )


class CodeRoute:
    """A ``strata.core.turn.Dispatcher`` for the model name ``code``."""

    def __init__(
        self,
        engine: Engine,
        sandbox: Sandbox | None,
        settings: CodeSettings,
        price: Callable[[str, Usage], float],
    ) -> None:
        self.engine = engine
        self.sandbox = sandbox
        self.settings = settings
        self.price = price

    def handles(self, model: str) -> bool:
        return model == NAME

    def names(self) -> list[str]:
        """Listed in ``/v1/models`` only where it can answer; asked anyway, it says why not."""
        return [NAME] if self.sandbox is not None else []

    def task(self, turn: Turn) -> CodeTask:
        """The request's task, validated: a 400 naming the option that is wrong."""
        if self.sandbox is None:
            raise InvalidRequest(
                "the code route runs the model's code in the Python sandbox, which is off: "
                "set [tools] sandbox = true in the settings",
                param="model",
            )
        options = turn.options.get("code") or {}
        if not isinstance(options, Mapping):
            raise InvalidRequest("strata.code must be an object", param="strata.code")
        unknown = set(options) - {"tests", "max_attempts", "model", "entry_point"}
        if unknown:
            raise InvalidRequest(f"unknown strata.code option(s): {sorted(unknown)}")
        model = options.get("model", self.settings.model)
        if not isinstance(model, str) or model == NAME:
            raise InvalidRequest("strata.code.model must name a model", param="strata.code")
        self.engine.get(model)  # 404 naming the models when there is no such model
        attempts = options.get("max_attempts", self.settings.max_attempts)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
            raise InvalidRequest(
                "strata.code.max_attempts must be an integer from 1 to 10", param="strata.code"
            )
        users = [m for m in turn.gen.messages or [] if m.get("role") == "user"]
        text = _text(users[-1].get("content")) if users else ""
        code = prompt_code(text)
        entry = options.get("entry_point") or function_name(code or text)
        if entry is not None and not (isinstance(entry, str) and entry.isidentifier()):
            raise InvalidRequest("strata.code.entry_point must be a name", param="strata.code")
        tests = options.get("tests")
        if tests is not None:
            if not isinstance(tests, str | list) or not all(isinstance(t, str) for t in tests):
                raise InvalidRequest(
                    "strata.code.tests must be Python source or a list of it", param="strata.code"
                )
            try:
                checks, source = checks_from_tests(tests), "tests"
            except SyntaxError as exc:
                raise InvalidRequest(
                    f"strata.code.tests is not valid Python: {exc.msg} (line {exc.lineno})",
                    param="strata.code",
                ) from exc
        else:
            checks, source = examples_from_prompt(text, entry), "examples"
        if entry is not None:
            checks = [Check(f"assert callable({entry}), 'no function named {entry}'"), *checks]
        return CodeTask(model, attempts, entry, checks, prelude(code, entry), source)

    async def generate(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]:
        task = self.task(turn)
        result.answered_by = task.model
        base = list(turn.gen.messages or [])
        if not any(m.get("role") == "system" for m in base):
            base = [{"role": "system", "content": SYSTEM}, *base]
        history: list[dict[str, Any]] = []  # every failed attempt and its feedback
        gen = replace(turn.gen, passthrough={}, stream=False)
        started = time.perf_counter()
        number = 1
        while number <= task.max_attempts:
            try:
                attempt = await self._attempt(
                    number, task, replace(gen, messages=[*base, *history]), turn, result
                )
            except ContextWindowExceeded:
                if number == 1:
                    raise
                if len(history) > 2:  # keep only the last attempt and its feedback
                    history = history[-2:]
                    continue
                break  # even that does not fit: answer with the best attempt so far
            task.attempts.append(attempt)
            if attempt.passed:
                break
            for earlier in task.attempts[:-1]:
                if earlier.code == attempt.code:
                    attempt.feedback = (
                        f"This is the same code as your attempt {earlier.number}, and it fails "
                        f"the same way. Try a different approach.\n\n{attempt.feedback}"
                    )
                    break
            history += [
                {"role": "assistant", "content": attempt.reply},
                {"role": "user", "content": attempt.feedback},
            ]
            number += 1
        chosen = self._choose(task.attempts)
        result.timings.total_s = time.perf_counter() - started
        result.report["code"] = {
            "model": task.model,
            "entry_point": task.entry,
            "checks": len(task.checks),
            "checked_against": task.source,
            "max_attempts": task.max_attempts,
            "passed": chosen.passed,
            "chosen": chosen.number,
            "attempts": [a.report() for a in task.attempts],
        }
        usages = [a.usage for a in task.attempts if a.usage is not None]
        usage = Usage(
            sum(u.prompt_tokens for u in usages), sum(u.completion_tokens for u in usages)
        )
        text = f"```python\n{chosen.code}\n```" if chosen.code else chosen.reply
        yield Chunk(text=text)
        yield Chunk(finish_reason="stop", usage=usage)

    @staticmethod
    def _choose(attempts: list[Attempt]) -> Attempt:
        """The first attempt that passed; else the one that passed most checks (the later
        one on a tie: it had the most feedback)."""
        for attempt in attempts:
            if attempt.passed:
                return attempt
        return max(reversed(attempts), key=lambda a: a.checks_passed)

    async def _attempt(
        self, number: int, task: CodeTask, gen: GenerationRequest, turn: Turn, result: TurnResult
    ) -> Attempt:
        attempt = Attempt(number)
        started = time.perf_counter()
        parts: list[str] = []

        def bill(model: str, usage: Usage) -> None:
            result.generations.append(Generation(model, usage, self.price(model, usage)))

        stream = self.engine.generate(
            task.model, gen, key=turn.caller.queue, timings=Timings(), record=bill
        )
        async for chunk in stream:
            parts.append(chunk.text)
            attempt.usage = chunk.usage or attempt.usage
        attempt.reply = "".join(parts)
        attempt.model_seconds = time.perf_counter() - started
        attempt.code = extract_code(attempt.reply, task.entry)
        if not attempt.code:
            attempt.error = "no Python code in the answer"
            attempt.feedback = (
                "Your answer has no Python code. Answer with the complete function in one "
                "```python block."
            )
            return attempt
        await self._run(task, attempt)
        return attempt

    async def _run(self, task: CodeTask, attempt: Attempt) -> None:
        assert self.sandbox is not None
        program = f"{task.prelude}\n\n{attempt.code}\n" if task.prelude else attempt.code
        main, files = harness(program, task.checks)
        started = time.perf_counter()
        run = await self.sandbox.run_python(main, files=files)
        attempt.run_seconds = time.perf_counter() - started
        report = read_report(run.stdout)
        if report is None:
            attempt.timed_out = run.timed_out
            why = f"it broke the sandbox's {run.limit} limit" if run.limit else "it crashed"
            if run.timed_out:
                why = "it ran out of time (an endless loop?)"
            attempt.error = _excerpt(f"The run was stopped: {why}.\n{run.stderr}")
            attempt.feedback = feedback(task, attempt, [])
            return
        if not report["loaded"]:
            attempt.error = _excerpt(str(report["error"]))
            attempt.feedback = feedback(task, attempt, [])
            return
        results: list[dict[str, Any]] = report["results"]
        attempt.checks_passed = sum(1 for r in results if r.get("passed"))
        attempt.passed = attempt.checks_passed == len(task.checks)
        if not attempt.passed:
            first = next(r for r in results if not r.get("passed"))
            attempt.error = _excerpt(first.get("error") or f"returned {first.get('got')}")
            attempt.feedback = feedback(task, attempt, results)
