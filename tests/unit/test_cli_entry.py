"""The `hcmoco` console script: lists the command modules and runs one by name."""
import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hcmoco import cli

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_every_command_with_its_description(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert {"generate", "splits", "pretrain", "finetune", "fetch", "aggregate"} <= set(rows)
    assert "synth.generate" in rows["generate"] and "Render one SynthHuman domain" in rows["generate"]
    assert "cli" not in rows and "cli_common" not in rows


def test_help_does_not_import_the_commands():
    """`hcmoco --help` stays fast: the listing reads sources, it imports no command (nor torch)."""
    code = ("import sys; from hcmoco.cli import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('hcmoco.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.splitlines()[-1] == "['hcmoco.cli']"


def test_a_command_runs_by_its_short_or_module_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--params", str(REPO / "params/params.yaml"), "--profile", "smoke", "--domain", "synth_mpii"]
    assert cli.main(["generate", *argv, "--out", "a", "--workers", "1"]) == 0
    assert json.loads((tmp_path / "a/train/index.json").read_text())["domain"] == "synth_mpii"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["processed.splits", "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("usage: hcmoco processed.splits ")


def test_an_unknown_command_is_one_error_line(capsys):
    assert cli.main(["pretrian"]) == 2
    assert capsys.readouterr().err == "error: pretrian: unknown command (`hcmoco --help` lists them)\n"


def test_the_declared_console_script_resolves():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for target in scripts.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), target
