"""The examples a ``code`` request is checked against: read from the prompt's docstring, or
from tests the user passes, and the harness that runs them in the sandbox.

Why read examples out of prose: a task usually comes with a few worked examples and nothing
else (HumanEval's docstrings write them half a dozen ways: doctests, ``f(x) == y``,
``f(x) ➞ y``, ``f(x) should return y``, ``For lst = [..] the output should be y``,
``Input: ... Output: ...``). Each becomes a :class:`Check`: a call and what it should give.
An example only counts when both sides parse as Python and the expected side is a literal,
so prose never turns into a wrong check that would push the model away from a right answer.

The harness runs every check separately inside one sandboxed run and prints one JSON
report, so a failure names its example and what came back (a value or a traceback's last
lines) instead of stopping at the first assert.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

REPORT_MARK = "@@strata-code-report@@"

_SEPARATORS = (
    "==>", "==", "➞", "->", "=>", "→", "should return", "returns", "return", "=",
    "is", "gives", "outputs",
)  # fmt: skip
_FOR = re.compile(
    r"^\s*(?:for|if|when|with|given)\s+(?:input\s+)?(.+?),?\s+the\s+"
    r"(?:output|result|answer|return value)\s+(?:should\s+be|will\s+be|is)\s+(.+?)\s*$",
    re.IGNORECASE,
)
_INPUT = re.compile(r"^\s*input\s*:\s*(.+?)\s*$", re.IGNORECASE)
_OUTPUT = re.compile(r"^\s*output\s*:\s*(.+?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Check:
    """One example or test. ``call`` is an expression whose value is compared with
    ``expected`` (an expression, or the printed text when ``text`` is set); a check without
    ``expected`` is a statement that passes when it runs without raising (an ``assert``)."""

    source: str
    call: str = ""
    expected: str = ""
    text: bool = False

    @property
    def statement(self) -> bool:
        return not self.call


def _literal(text: str) -> str | None:
    """``text`` (trailing prose punctuation and comments trimmed) when it is a Python
    literal; else None."""
    candidate = text.split(" #", maxsplit=1)[0].strip()
    candidate = {"true": "True", "false": "False", "none": "None"}.get(candidate, candidate)
    for _ in range(2):
        try:
            ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            candidate = candidate.rstrip(".,;")
            continue
        return candidate
    return None


def _expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _call_at(line: str, start: int) -> int | None:
    """Where the call whose name starts at ``start`` ends (after its closing parenthesis)."""
    depth = 0
    quote: str | None = None
    for i in range(line.index("(", start), len(line)):
        ch = line[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _call_line(line: str, entry: str) -> Check | None:
    """``entry(args) SEP expected`` on one line."""
    match = re.search(rf"(?<![\w.]){re.escape(entry)}\s*\(", line)
    if match is None:
        return None
    end = _call_at(line, match.start())
    if end is None:
        return None
    call, rest = line[match.start() : end], line[end:].strip().lstrip("#").strip()
    for sep in _SEPARATORS:
        if rest.lower().startswith(sep):
            expected = _literal(rest[len(sep) :])
            if expected is not None and _expression(call):
                return Check(f"{call} == {expected}", call, expected)
    return None


def _keyword_call(entry: str, assignments: str, expected: str) -> Check | None:
    """``For a = 1, b = [2] the output should be 3`` → ``entry(a=1, b=[2]) == 3``."""
    call = f"{entry}({assignments.strip().rstrip(',')})"
    value = _literal(expected)
    if value is None or not _expression(call):
        return None
    tree = ast.parse(call, mode="eval").body
    if not isinstance(tree, ast.Call) or tree.args or not tree.keywords:
        return None
    return Check(f"{call} == {value}", call, value)


def _comparison(source: str) -> Check | None:
    """``f(x) == <literal>`` as a check of ``f(x)``; None for anything else."""
    if not _expression(source):
        return None
    tree = ast.parse(source, mode="eval").body
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq):
        call, value = ast.unparse(tree.left), ast.unparse(tree.comparators[0])
        if _literal(value) is not None:
            return Check(source, call, value)
    return None


def _doctests(lines: Sequence[str]) -> list[Check]:
    checks: list[Check] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped.startswith(">>>"):
            i += 1
            continue
        source = stripped[3:].strip()
        i += 1
        while i < len(lines) and lines[i].strip().startswith("..."):
            source += "\n" + lines[i].strip()[3:].strip()
            i += 1
        output: list[str] = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(">>>"):
            if lines[i].strip().startswith('"""') or lines[i].strip().startswith("'''"):
                break
            output.append(lines[i].strip())
            i += 1
        expected = "\n".join(output)
        compared = _comparison(source)
        if compared is not None:  # >>> f(x) == y: HumanEval's doctests with no output line
            checks.append(compared)
            continue
        if not _expression(source):
            if not expected:  # a setup statement (x = 3): runs before the checks after it
                checks.append(Check(source))
            continue
        if expected:
            literal = _literal(expected)
            shown = f"{source} -> {expected}"
            checks.append(Check(shown, source, literal or expected, literal is None))
    return checks


def examples_from_prompt(prompt: str, entry: str | None) -> list[Check]:
    """The worked examples in ``prompt`` for function ``entry`` (doctests always; the other
    shapes only when the function's name is known, so a call to anything else is ignored)."""
    lines = prompt.splitlines()
    checks = _doctests(lines)
    if entry is None:
        return checks
    seen = {c.source for c in checks}
    for n, line in enumerate(lines):
        if line.strip().startswith(">>>"):
            continue
        found = _call_line(line, entry)
        if found is None and (match := _FOR.match(line)):
            found = _keyword_call(entry, match.group(1), match.group(2))
        if found is None and (match := _INPUT.match(line)):
            following = [x for x in lines[n + 1 : n + 4] if x.strip()]
            out = _OUTPUT.match(following[0]) if following else None
            if out is not None:
                found = _keyword_call(entry, match.group(1), out.group(1))
        if found is not None and found.source not in seen:
            seen.add(found.source)
            checks.append(found)
    return checks


def function_name(prompt: str) -> str | None:
    """The function a prompt asks for: the last ``def`` with a docstring, else the last."""
    names = re.findall(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", prompt, re.MULTILINE)
    if not names:
        return None
    documented = re.findall(
        r"^\s*def\s+([A-Za-z_]\w*)\s*\([^)]*\)[^:]*:\s*\n\s*(?:\"\"\"|''')", prompt, re.MULTILINE
    )
    return str(documented[-1] if documented else names[-1])


def checks_from_tests(tests: str | Sequence[str]) -> list[Check]:
    """The user's tests: Python source (or a list of it), one check per top-level statement;
    ``assert a == b`` is compared value to value, so a failure says what came back."""
    sources = [tests] if isinstance(tests, str) else list(tests)
    checks: list[Check] = []
    for source in sources:
        tree = ast.parse(source)  # SyntaxError: the caller's 400
        for node in tree.body:
            text = ast.get_source_segment(source, node) or ast.unparse(node)
            if (
                isinstance(node, ast.Assert)
                and isinstance(node.test, ast.Compare)
                and len(node.test.ops) == 1
                and isinstance(node.test.ops[0], ast.Eq)
            ):
                left, right = node.test.left, node.test.comparators[0]
                checks.append(Check(text, ast.unparse(left), ast.unparse(right)))
            else:
                checks.append(Check(text))
    return checks


_HARNESS = r"""
import io, json, math, sys, traceback
from contextlib import redirect_stdout

def _same(got, want):
    if got == want:
        return True
    if isinstance(got, float) or isinstance(want, float):
        try:
            return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
        except TypeError:
            return False
    if isinstance(got, (list, tuple)) and isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want))
    return False

def _where(exc):
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    keep = [l for l in lines if "main.py" not in l and "Traceback" not in l]
    return "".join(keep[-4:]).strip()[-800:]

report = {"loaded": False, "error": None, "results": []}
namespace = {"__name__": "solution"}
checks = json.loads(open("checks.json").read())
try:
    with redirect_stdout(io.StringIO()):
        exec(compile(open("solution.py").read(), "solution.py", "exec"), namespace)
    report["loaded"] = True
except BaseException as exc:
    report["error"] = _where(exc)
if report["loaded"]:
    for check in checks:
        out = {"passed": False}
        try:
            with redirect_stdout(io.StringIO()) as printed:
                if not check["call"]:
                    exec(compile(check["source"], "test", "exec"), namespace)
                    out["passed"] = True
                else:
                    got = eval(compile(check["call"], "example", "eval"), namespace)
                    if check["text"]:
                        shown = printed.getvalue().strip() or repr(got)
                        out["passed"] = shown == check["expected"].strip()
                    else:
                        out["passed"] = _same(got, eval(check["expected"], namespace))
                    out["got"] = repr(got)[:300]
        except BaseException as exc:
            out["error"] = _where(exc)
        report["results"].append(out)
sys.stdout.write("\n@@strata-code-report@@" + json.dumps(report) + "\n")
"""


def harness(code: str, checks: Sequence[Check]) -> tuple[str, dict[str, str]]:
    """One sandboxed run: the harness (run as ``main.py``) and the files beside it."""
    files = {"solution.py": code, "checks.json": json.dumps([asdict(c) for c in checks])}
    return _HARNESS, files


def read_report(stdout: str) -> dict[str, Any] | None:
    """The harness's report from a run's stdout; None when the run died before writing it."""
    at = stdout.rfind(REPORT_MARK)
    if at < 0:
        return None
    try:
        found: dict[str, Any] = json.loads(stdout[at + len(REPORT_MARK) :].strip())
    except ValueError:
        return None
    return found
