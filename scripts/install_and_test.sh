#!/usr/bin/env bash
# README command B: install everything, then run the default (fast) test suite.
# pytest's exit code 5 (no tests collected) is turned into a failure, never a silent green.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || { echo "install failed" >&2; exit 1; }
. .venv/bin/activate
# one worker per core, at most 4 (pytest-xdist); a module's tests stay on one worker, so its module-scoped
# fixtures are built once. Pass -n 0 to run in this process (the last -n wins).
python -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadscope "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
