#!/usr/bin/env bash
# README command B: install everything, then run the default (fast) test suite.
# pytest's exit code 5 (no tests collected) is turned into a failure, never a silent green.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || { echo "install failed" >&2; exit 1; }
. .venv/bin/activate
python -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
