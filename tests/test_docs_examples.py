"""Every ```python block of README.md and docs/*.md runs as written, from the repository root (docs that run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for k, code in enumerate(BLOCK.findall(doc.read_text())):
            found.append((f"{doc.relative_to(ROOT)}#{k + 1}", code))
    return found


def test_the_docs_have_python_examples():
    assert len(_blocks()) >= 4     # README, getting-started, quantum x2 when this test was written


@pytest.mark.parametrize("name,code", _blocks(), ids=[n for n, _ in _blocks()])
def test_python_example_runs(name, code):
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"


# a command as the docs show it: in `code` or at the start of a line of a code block, up to the closing
# backtick or the end of the (backslash-continued) line
COMMAND = re.compile(r"(?:^|`)[ \t]*hqc-qiskit((?: [a-z][a-z0-9-]*)+)((?:[^`\n]|\\\n)*)", re.M)


def test_every_documented_command_and_option_exists():
    """Each `hqc-qiskit CMD [SUB] ... --option` in README.md and docs/*.md names a real (sub)command and only
    options that command has: a renamed flag fails here rather than in a user's shell."""
    import typer.main

    from hqc_qiskit.cli import app

    root = typer.main.get_command(app)
    checked, wrong = 0, []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for m in COMMAND.finditer(doc.read_text()):
            cmd, words = root, m.group(1).split()
            while words and hasattr(cmd, "commands") and words[0] in cmd.commands:
                cmd = cmd.commands[words.pop(0)]
            where = f"{doc.relative_to(ROOT)}: {m.group(0).strip()[:90]}"
            if hasattr(cmd, "commands"):
                wrong.append(f"{where}: no such command")
                continue
            options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", " ".join(words) + m.group(2)):
                checked += 1
                if option not in options:
                    wrong.append(f"{where}: {option} is not an option of this command")
    assert checked >= 50, checked         # the docs show many options; a broken pattern would find none
    assert not wrong, "\n".join(wrong)
