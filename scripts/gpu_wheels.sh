#!/usr/bin/env bash
# Here, before a GPU check: the packages the lent GPU machine lacks, as wheels in .whl/ (git-ignored, ~19 MB).
# That machine has Python 3.12 with torch, numpy, scipy, sympy, matplotlib, pyyaml, rich, typer, pytest and
# opt-einsum-fx (library device/KINDS.md); the training path needs these besides (versions as pyproject.toml pins
# or as .venv resolves them). Not needed there: qiskit-aer, mitiq, qiskit-ibm-runtime, qiskit-machine-learning
# (the training path does not import them: checked by importing with them blocked). emcee: hqc_qiskit.autocorr, for
# the averages of md and mc there (the CLI imported it at start until session 42; session 41 found every training
# step of the check failing without it in scripts/gpu_rehearsal.sh).
# Each at the version .venv has (session 42; before, the versions were written here by hand and could drift from
# what CI and scripts/gpu_rehearsal.sh run). tests/test_gpu_check.py reads the WHEELS line.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="qiskit rustworkx stevedore dill ase vesin e3nn pydantic pydantic-core annotated-types typing-inspection emcee"
[ -x .venv/bin/python ] || { echo "no .venv: run bash scripts/install.sh first" >&2; exit 1; }
# shellcheck disable=SC2086
SPECS=$(.venv/bin/python -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $WHEELS)
echo "wheels for Python 3.12: $SPECS"
rm -rf .whl && mkdir .whl
# shellcheck disable=SC2086
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $SPECS
du -sh .whl
