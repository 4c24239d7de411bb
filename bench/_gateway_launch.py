"""Starting the gateway benchmark's targets: the canned backend, ``strata serve`` in front of
it, LiteLLM's proxy (in its own venv) and a bare passthrough, each as a child process that
dies with the benchmark. The runner (``gateway_overhead.py``) measures them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from _common import REPO_ROOT, ProcessGroup, ServerProcess, free_port, wait_http
from _gateway_wire import HOST, MODEL

LITELLM_VENV = REPO_ROOT / ".venv-bench-litellm"
LITELLM_INSTALL_TIMEOUT_S = 1200.0
READY_TIMEOUT_S = {"direct": 30.0, "strata": 60.0, "litellm": 180.0, "passthrough": 30.0}


class Slot(Protocol):
    """Where a started target is recorded (the runner's ``Target``)."""

    port: int
    process: ServerProcess | None


def wire_argv(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve().parent / "_gateway_wire.py"), *args]


def start_direct(group: ProcessGroup, target: Slot) -> None:
    target.port = free_port()
    target.process = group.start("direct", wire_argv("backend", str(target.port)))
    wait_http(
        f"http://{HOST}:{target.port}/v1/models",
        target.process,
        timeout_s=READY_TIMEOUT_S["direct"],
    )


def issue_key(home: Path, *limits: str) -> str:
    """A key issued by ``strata keys create`` into ``home`` before its server starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    argv = [sys.executable, "-m", "strata", "keys", "create", "--name", "bench", *limits]
    done = subprocess.run(
        [*argv, "--home", str(home)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"strata keys create failed: {done.stderr.strip()[-300:]}")
    return done.stdout.splitlines()[0]


def start_strata(
    group: ProcessGroup, target: Slot, backend_url: str, work: Path, name: str = "strata"
) -> None:
    """``strata serve`` in front of the canned backend, its state in ``work/<name>-home``
    (where ``issue_key`` may have put a key first)."""
    config = work / "strata.toml"
    config.write_text(
        "bundled_models = false\n"
        f'default_model = "{MODEL}"\n\n'
        f"[models.{MODEL}]\n"
        'backend = "openai"\n'
        f'url = "{backend_url}"\n'
        "max_concurrency = 64\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["STRATA_HOME"] = str(work / f"{name}-home")
    target.port = free_port()
    argv = [sys.executable, "-m", "strata", "serve", "--config", str(config)]
    argv += ["--port", str(target.port), "--log-level", "warning"]
    target.process = group.start(name, argv, env=env)
    wait_http(
        f"http://{HOST}:{target.port}/health", target.process, timeout_s=READY_TIMEOUT_S["strata"]
    )


def ensure_litellm(log: Path) -> Path:
    """LiteLLM's proxy in its own venv at the repo root, installed once; its CLI's path."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    python = LITELLM_VENV / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(LITELLM_VENV)],
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "--quiet", "litellm[proxy]"],
    ]
    deadline = time.monotonic() + LITELLM_INSTALL_TIMEOUT_S
    with log.open("ab") as out:
        for step in steps:
            remaining = max(1.0, deadline - time.monotonic())
            try:
                done = subprocess.run(
                    step, stdout=out, stderr=subprocess.STDOUT, timeout=remaining, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"installing LiteLLM timed out: {' '.join(step)}") from exc
            if done.returncode != 0:
                tail = log.read_text(errors="replace")[-800:].strip()
                raise RuntimeError(f"installing LiteLLM failed ({' '.join(step)}): {tail}")
    if not exe.exists():
        raise RuntimeError(f"LiteLLM installed but {exe} is missing")
    return exe


def start_litellm(group: ProcessGroup, target: Slot, backend_url: str, work: Path) -> None:
    exe = ensure_litellm(work / "litellm-install.log")
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {backend_url}\n"
        "      api_key: x\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  set_verbose: false\n"
        "  json_logs: false\n"
        "  turn_off_message_logging: true\n"
        "  request_timeout: 30\n"
        "general_settings:\n"
        "  disable_spend_logs: true\n"
        "  disable_error_logs: true\n"
        # No auth, like the strata target (no api_keys): LiteLLM refuses that unless told.
        "  dangerously_permit_weak_or_unset_master_key: true\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "OPENAI_"))}
    env.update(
        LITELLM_LOG="ERROR",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # offline: skip fetching prices at import
        LITELLM_TELEMETRY="False",
        LITELLM_MODE="PRODUCTION",
        DO_NOT_TRACK="1",
        NO_DOCS="True",
    )
    target.port = free_port()
    argv = [str(exe), "--config", str(config), "--host", HOST, "--port", str(target.port)]
    target.process = group.start("litellm", argv, env=env)
    wait_http(
        f"http://{HOST}:{target.port}/health/liveliness",
        target.process,
        timeout_s=READY_TIMEOUT_S["litellm"],
    )


def start_passthrough(group: ProcessGroup, target: Slot, backend_url: str) -> None:
    target.port = free_port()
    argv = wire_argv("passthrough", str(target.port), backend_url)
    target.process = group.start("passthrough", argv)
    wait_http(
        f"http://{HOST}:{target.port}/health",
        target.process,
        timeout_s=READY_TIMEOUT_S["passthrough"],
    )


# ---- report ------------------------------------------------------------------------------
