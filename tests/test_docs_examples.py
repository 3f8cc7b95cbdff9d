"""Every ```python block of README.md and docs/*.md runs as written, from the repository root (docs that run)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for k, code in enumerate(BLOCK.findall(doc.read_text())):
            found.append((f"{doc.relative_to(ROOT)}#{k + 1}", code))
    return found


BLOCKS = _blocks()


def test_the_docs_have_python_examples():
    assert len(BLOCKS) >= 4     # README, getting-started, quantum x2 when this test was written


@pytest.mark.parametrize("name,code", BLOCKS, ids=[n for n, _ in BLOCKS])
def test_python_example_runs(name, code):
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"


# a command as the docs show it: in `code` (up to the closing backtick, across line breaks) or at the start of a
# line of a code block (up to the end of the line, with backslash continuations)
COMMAND_START = re.compile(r"(`|^[ \t]*)(hqc-qiskit|python -m hqc_qiskit\.[a-z_]+|python benchmarks/[a-z_]+\.py)", re.M)
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _documented_commands() -> list[tuple[str, str, str]]:
    """(where, program, arguments) of every command shown in README.md and docs/*.md."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        fences = [f.span() for f in re.finditer(r"^```.*?^```", text, re.S | re.M)]
        for m in COMMAND_START.finditer(text):
            if m.group(1) != "`" and not any(a < m.start() < b for a, b in fences):
                continue          # a line of prose that starts with the name
            if m.group(1) == "`":
                end = text.find("`", m.end())
            else:
                end = m.end()
                while (nl := text.find("\n", end)) != -1 and text[nl - 1] == "\\":
                    end = nl + 1
                end = text.find("\n", end)
            args = text[m.end():end if end != -1 else len(text)]
            shown = " ".join(f"{m.group(2)}{args}".split())[:100]
            found.append((f"{doc.relative_to(ROOT)}: `{shown}`", m.group(2), args))
    return found


def test_every_documented_command_and_option_exists():
    """Each `hqc-qiskit CMD [SUB] ... --option` in README.md and docs/*.md names a real (sub)command and only
    options that command has: a renamed flag fails here rather than in a user's shell."""
    import typer.main

    from hqc_qiskit.cli import app

    root = typer.main.get_command(app)
    checked, wrong = 0, []
    for where, program, args in _documented_commands():
        if program != "hqc-qiskit":
            continue
        cmd, words = root, args.split()
        while words and hasattr(cmd, "commands") and words[0] in cmd.commands:
            cmd = cmd.commands[words.pop(0)]
        if hasattr(cmd, "commands"):
            if words and not words[0].startswith("-"):      # `hqc-qiskit` alone or with --help is fine
                wrong.append(f"{where}: no such command")
            continue
        options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        for option in OPTION.findall(" ".join(words)):
            checked += 1
            if option not in options:
                wrong.append(f"{where}: {option} is not an option of this command")
    assert checked >= 50, checked         # the docs show many options; a broken pattern would find none
    assert not wrong, "\n".join(wrong)


def _script_key(program: str, args: str) -> tuple[str, ...]:
    """The program and, for `python -m MODULE SUB`, its subcommand: what --help is asked of."""
    words = args.split()
    sub = [words[0]] if program.startswith("python -m") and words and re.fullmatch(r"[a-z]+", words[0]) else []
    return (program, *sub)


# Runs each script's --help in one child process: every script imports torch and qiskit (seconds each), so a
# process per script made this test a minute long. In the child each script still runs as __main__ from scratch;
# what a help request prints, or the traceback it dies with, comes back per script.
# As `python path/script.py` does, a script's own folder is first on sys.path while it runs (so that it finds its
# sibling helpers, e.g. benchmarks/_common.py) and what it imported from there is forgotten afterwards (so that
# no script passes only because an earlier one put its folder on the path).
_HELP_DRIVER = """
import contextlib, io, json, os, runpy, sys, traceback
out = {}
for key in json.loads(sys.argv[1]):
    words = key[0].split()[1:]
    module = words[0] == "-m"
    target, argv = (words[1], words[2:]) if module else (words[0], words[1:])
    sys.argv = [target, *argv, *key[1:], "--help"]
    folder = "" if module else os.path.abspath(os.path.dirname(target))
    saved_path, known = list(sys.path), set(sys.modules)
    sys.path[0] = folder
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            (runpy.run_module if module else runpy.run_path)(target, run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            code = 1
            traceback.print_exc(file=stderr)
    sys.path[:] = saved_path
    for name in set(sys.modules) - known:
        if folder and (getattr(sys.modules[name], "__file__", None) or "").startswith(folder + os.sep):
            del sys.modules[name]
    out[json.dumps(key)] = [code, stdout.getvalue(), stderr.getvalue()]
print(json.dumps(out))
"""


def _help_texts(keys: list[tuple[str, ...]]) -> dict[tuple[str, ...], tuple[int, str, str]]:
    """(exit code, stdout, stderr) of `PROGRAM [SUB] --help` for each key, from one child process."""
    done = subprocess.run([sys.executable, "-c", _HELP_DRIVER, json.dumps(keys)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return {tuple(json.loads(k)): tuple(v) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


def test_every_documented_script_option_exists():
    """The same for `python -m hqc_qiskit.MODULE [SUB]` and `python benchmarks/NAME.py`: each option shown in
    the docs appears in that script's --help (which must work: no traceback for a user asking for help)."""
    shown = [(where, _script_key(program, args), args) for where, program, args in _documented_commands()
             if program != "hqc-qiskit"]
    keys = sorted({key for _, key, _ in shown})
    helps = _help_texts(keys)
    checked, wrong = 0, []
    for key, (code, _, stderr) in helps.items():
        if code != 0:
            wrong.append(f"`{' '.join(key)} --help` failed: {stderr[-500:]}")
    for where, key, args in shown:
        text = helps[key][1]
        for option in OPTION.findall(args):
            checked += 1
            if not re.search(rf"(?<![\w-]){option}(?![\w-])", text):
                wrong.append(f"{where}: {option} is not in `{' '.join(key)} --help`")
    assert len(keys) >= 15 and checked >= 30, (len(keys), checked)
    assert not wrong, "\n".join(wrong)
