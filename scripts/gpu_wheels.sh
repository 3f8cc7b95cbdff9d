#!/usr/bin/env bash
# Here, before a GPU check: the packages the lent GPU machine lacks, as wheels in .whl/ (git-ignored, ~19 MB).
# That machine has Python 3.12 with torch, numpy, scipy, sympy, matplotlib, pyyaml, rich, typer, pytest and
# opt-einsum-fx (library device/KINDS.md); the training path needs these besides (versions as pyproject.toml pins
# or as .venv resolves them). Not needed there: qiskit-aer, mitiq, qiskit-ibm-runtime, qiskit-machine-learning
# (the training path does not import them: checked by importing with them blocked). emcee: hqc_qiskit.autocorr,
# which the CLI imports (session 41: without it every training step of the check failed in scripts/gpu_rehearsal.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    qiskit==2.6.1 rustworkx==0.18.1 stevedore==5.10.0 dill==0.4.1 ase==3.29.0 vesin==0.6.2 e3nn==0.6.0 \
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 emcee==3.1.6
du -sh .whl
