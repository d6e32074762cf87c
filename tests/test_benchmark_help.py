"""Every benchmark's --help prints whole sentences and writes nothing (issue 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "update_readme.py")


def tree_state() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_writes_nothing_and_ends_its_sentences(script):
    before = tree_state()
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert tree_state() == before
    description = done.stdout.split("\n\n")[1]
    assert description.rstrip().endswith((".", ":", ")")), description
