"""Shell templates for `run` steps."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shipline.runner.shells import ShellError, render, resolve_shell


@pytest.fixture
def bin_dir(tmp_path: Path) -> str:
    """A PATH holding fake `bash`, `sh`, `python` and `perl` executables."""
    for name in ("bash", "sh", "python", "perl", "pwsh"):
        program = tmp_path / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    return str(tmp_path)


def test_bash_template(bin_dir: str) -> None:
    argv, ext = resolve_shell("bash", bin_dir)
    assert argv == [
        os.path.join(bin_dir, "bash"),
        "--noprofile",
        "--norc",
        "-eo",
        "pipefail",
        "{0}",
    ]
    assert ext == ".sh"


def test_default_is_bash(bin_dir: str) -> None:
    assert resolve_shell(None, bin_dir) == resolve_shell("bash", bin_dir)


def test_default_falls_back_to_sh_without_bash(tmp_path: Path) -> None:
    sh = tmp_path / "sh"
    sh.write_text("#!/bin/sh\n")
    sh.chmod(0o755)
    argv, ext = resolve_shell(None, str(tmp_path))
    assert argv == [str(sh), "-e", "{0}"]
    assert ext == ".sh"


def test_explicit_bash_does_not_fall_back(tmp_path: Path) -> None:
    argv, _ = resolve_shell("bash", str(tmp_path))
    assert argv[0] == "bash"  # left for the executor to report as missing


def test_sh_template(bin_dir: str) -> None:
    assert resolve_shell("sh", bin_dir) == ([os.path.join(bin_dir, "sh"), "-e", "{0}"], ".sh")


def test_python_template(bin_dir: str) -> None:
    assert resolve_shell("python", bin_dir) == ([os.path.join(bin_dir, "python"), "{0}"], ".py")


def test_custom_shell(bin_dir: str) -> None:
    argv, ext = resolve_shell("perl {0}", bin_dir)
    assert argv == [os.path.join(bin_dir, "perl"), "{0}"]
    assert ext == ""


def test_custom_shell_with_quoted_arguments(bin_dir: str) -> None:
    argv, _ = resolve_shell("perl -e 'do $ARGV[0]' {0}", bin_dir)
    assert argv[1:] == ["-e", "do $ARGV[0]", "{0}"]


def test_unknown_shell_is_an_error(bin_dir: str) -> None:
    with pytest.raises(ShellError, match='unknown shell "fish"'):
        resolve_shell("fish", bin_dir)


def test_render_puts_the_script_path_in() -> None:
    argv = ["/bin/bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"]
    assert render(argv, "/tmp/s 1.sh") == (
        "/bin/bash",
        "--noprofile",
        "--norc",
        "-eo",
        "pipefail",
        "/tmp/s 1.sh",
    )
    assert render(["pwsh", "-command", ". '{0}'"], "/w/x.ps1") == (
        "pwsh",
        "-command",
        ". '/w/x.ps1'",
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash on PATH")
def test_real_bash_is_found_on_path() -> None:
    argv, _ = resolve_shell("bash", os.environ.get("PATH"))
    assert os.path.isabs(argv[0])
