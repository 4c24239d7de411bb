"""The tools feature: the sandbox is off unless the settings enable it, and the operator's
``strata tools run python FILE`` prints exactly one JSON object."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from strata.core.kernel import Kernel
from strata.edges.cli.main import main
from strata.features.tools.feature import Tools
from strata.features.tools.sandbox import Sandbox
from tests.conftest import fake_settings


def test_the_sandbox_is_off_by_default(tmp_path: Path) -> None:
    kernel = Kernel(fake_settings(tmp_path))
    assert kernel.feature("tools", Tools).sandbox is None


def test_the_setting_turns_it_on_with_the_data_directory_hidden(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, tools={"sandbox": True, "limits": {"wall_seconds": 3}})
    runtime = Kernel(settings).feature("tools", Tools)
    assert isinstance(runtime.sandbox, Sandbox)
    assert runtime.settings.limits.wall_seconds == 3
    assert settings.home in runtime.sandbox.config.hidden


def test_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sandboxx"):
        fake_settings(tmp_path, tools={"sandboxx": True})


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_run_python_prints_one_json_object(tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("import sys\nprint('hi')\nprint('oops', file=sys.stderr)\nsys.exit(3)\n")
    done = subprocess.run(
        [sys.executable, "-m", "strata", "tools", "run", "python", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert result["stdout"] == "hi\n"
    assert "oops" in result["stderr"]
    assert result["exit_code"] == 3
    assert result["timed_out"] is False


def test_run_python_missing_file_is_an_error() -> None:
    result = CliRunner().invoke(main, ["tools", "run", "python", "/nonexistent/x.py"])
    assert result.exit_code != 0
    assert result.stdout == ""
