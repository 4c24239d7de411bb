"""The sandbox against what a hostile user would try: each escape contained, the limits
reported by name, and the test process (standing in for the server) unharmed."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import textwrap
import time
from pathlib import Path

import pytest

from strata.features.tools.cli_run import run_file
from strata.features.tools.sandbox import (
    RunResult,
    Sandbox,
    SandboxConfig,
    SandboxLimits,
    find_bwrap,
)

pytestmark = pytest.mark.skipif(
    find_bwrap() is None, reason="bubblewrap not installed (scripts/install-system-deps.sh)"
)

FAST = SandboxLimits(wall_seconds=5.0, cpu_seconds=5)


def run(code: str, limits: SandboxLimits = FAST, config: SandboxConfig | None = None) -> RunResult:
    return Sandbox(limits, config).run_python_sync(textwrap.dedent(code))


def sandbox_processes(config: SandboxConfig) -> list[int]:
    """Host pids still alive as one of the sandbox's pool uids (root only). Zombies do not
    count: a sandbox's init, reparented to the host's init, waits there to be reaped."""
    pool = range(config.uid_base, config.uid_base + config.uid_count)
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if entry.stat().st_uid in pool and state != "Z":
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return pids


def test_runs_code_and_reports_its_output() -> None:
    result = run("import sys\nprint('hi')\nprint('oops', file=sys.stderr)\nsys.exit(3)")
    assert result.stdout == "hi\n"
    assert result.stderr == "oops\n"
    assert result.exit_code == 3
    assert not result.timed_out and result.limit is None
    assert 0 < result.duration < 5


def test_files_sit_beside_the_code_and_stdin_is_passed() -> None:
    result = Sandbox(FAST).run_python_sync(
        "import helper, sys\nprint(helper.X, sys.stdin.read())",
        files={"helper.py": "X = 41 + 1\n"},
        stdin="from stdin",
    )
    assert result.stdout == "42 from stdin\n", result


def test_no_network_not_even_the_hosts_loopback() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        result = run(f"""
            import socket
            for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 53), ("8.8.8.8", 443)):
                try:
                    socket.create_connection((host, port), timeout=1).close()
                    print("connected", host)
                except OSError as exc:
                    print("blocked", host, type(exc).__name__)
            print(sorted(n for _, n in socket.if_nameindex()))
        """)
    finally:
        listener.close()
    assert "connected" not in result.stdout, result
    assert result.stdout.count("blocked") == 3, result
    assert "['lo']" in result.stdout, result


def test_host_files_home_and_data_dir_are_invisible(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.txt").write_text("tenant secrets")
    result = run(
        f"""
        import os
        for path in ("/etc/shadow", "/etc/passwd", "/root", {str(data)!r},
                     {str(data / "secret.txt")!r}, {str(Path.cwd())!r}, "/home", "/var"):
            try:
                if os.path.isdir(path):
                    print("listed", path, os.listdir(path))
                else:
                    print("read", path, open(path).read()[:20])
            except OSError as exc:
                print("denied", path, type(exc).__name__)
        try:
            open("/usr/pwned", "w")
            print("wrote /usr")
        except OSError:
            print("read-only /usr")
        """,
        config=SandboxConfig(hidden=(data,)),
    )
    assert result.exit_code == 0, result
    assert "tenant secrets" not in result.stdout
    assert "root:" not in result.stdout
    assert result.stdout.count("denied") == 8, result.stdout
    assert "read-only /usr" in result.stdout


def test_the_servers_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_API_KEYS", "sk-very-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-also-secret")
    result = run("import json, os\nprint(json.dumps(dict(os.environ)))")
    env = json.loads(result.stdout)
    assert "sk-" not in result.stdout
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}, env


def test_the_process_limit_binds_even_when_strata_runs_as_root() -> None:
    result = run(
        """
        import os, time
        made = 0
        try:
            for _ in range(500):
                if os.fork() == 0:
                    time.sleep(2)
                    os._exit(0)
                made += 1
        except OSError as exc:
            print("stopped at", made, type(exc).__name__)
        """,
        SandboxLimits(wall_seconds=8.0, processes=20),
    )
    assert "stopped at" in result.stdout, result
    assert int(result.stdout.split()[2]) < 20


def test_fork_bomb_is_contained_and_leaves_nothing_behind() -> None:
    config = SandboxConfig()
    result = run("import os\nwhile True:\n    os.fork()", SandboxLimits(wall_seconds=3.0))
    assert result.limit in ("processes", "wall_time"), result
    assert result.duration < 10
    if os.geteuid() == 0:
        time.sleep(0.2)
        assert sandbox_processes(config) == []


def test_memory_bomb_is_stopped() -> None:
    result = run("blocks = []\nwhile True:\n    blocks.append(bytearray(50 << 20))")
    assert result.limit == "memory", result
    assert result.exit_code != 0
    one_shot = run("x = bytearray(4 << 30)")
    assert one_shot.limit == "memory", one_shot


def test_infinite_loop_hits_the_wall_clock() -> None:
    result = run("while True:\n    pass", SandboxLimits(wall_seconds=1.5, cpu_seconds=10))
    assert result.timed_out and result.limit == "wall_time", result
    assert result.exit_code == -9
    assert 1.4 < result.duration < 4


def test_cpu_limit_is_reported_as_such() -> None:
    # a generous wall clock: on a loaded machine 1 s of CPU can take many seconds of wall time
    result = run("while True:\n    pass", SandboxLimits(wall_seconds=30.0, cpu_seconds=1))
    assert result.timed_out and result.limit == "cpu_time", result


def test_huge_output_is_cut_at_the_limit() -> None:
    limits = SandboxLimits(wall_seconds=5.0, output_bytes=64 * 1024)
    result = run("while True:\n    print('x' * 1000)", limits)
    assert result.limit == "output", result
    assert len(result.stdout) + len(result.stderr) <= 64 * 1024
    assert result.duration < 4


def test_filling_the_disk_stops_at_its_size() -> None:
    limits = SandboxLimits(wall_seconds=5.0, disk_bytes=4 << 20)
    result = run("open('/tmp/big', 'wb').write(b'x' * (16 << 20))", limits)
    assert result.limit == "disk", result


def test_killing_the_parent_harms_no_one_outside() -> None:
    me = os.getpid()
    result = run(f"""
        import os, signal
        for pid in (os.getppid(), 1, {me}):
            try:
                os.kill(pid, signal.SIGKILL)
                print("sent", pid)
            except OSError as exc:
                print("refused", pid, type(exc).__name__)
        os.kill(-1, signal.SIGKILL)
    """)
    assert f"sent {me}" not in result.stdout, result
    assert os.getpid() == me  # still here
    assert result.exit_code != 0  # the last kill took the sandbox's own processes down
    assert run("print('next run')").stdout == "next run\n"


def test_runs_are_concurrent_and_the_loop_keeps_serving() -> None:
    async def scenario() -> tuple[list[RunResult], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        tick = asyncio.create_task(ticker())
        sandbox = Sandbox(FAST)
        results = await asyncio.gather(
            *(sandbox.run_python("import time\ntime.sleep(1)\nprint('done')") for _ in range(3))
        )
        tick.cancel()
        return list(results), ticks

    results, ticks = asyncio.run(scenario())
    assert [r.stdout for r in results] == ["done\n"] * 3
    assert ticks >= 10  # the event loop ran while the sandboxes slept
    assert max(r.duration for r in results) < 3  # in parallel, not one after another


def test_cli_run_file_returns_one_json_object(tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("print(6 * 7)\n")
    out = run_file(script)
    assert json.loads(json.dumps(out)) == out
    assert out["stdout"] == "42\n"
    assert out["exit_code"] == 0 and out["timed_out"] is False and out["limit"] is None
    assert set(out) == {"stdout", "stderr", "exit_code", "timed_out", "limit", "duration"}


def test_file_names_must_be_plain() -> None:
    with pytest.raises(ValueError):
        Sandbox(FAST).run_python_sync("", files={"../x.py": ""})
