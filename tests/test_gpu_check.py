"""The CUDA check (scripts/gpu_check.sh) imports only what the lent GPU machine has or gets as wheels from
scripts/gpu_wheels.sh: a new dependency of the training path shows here, not as device minutes lost there."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

GUARD = ROOT / "scripts" / "gpu_rehearsal"
WHEELS = re.search(r'^WHEELS="([^"]+)"', (ROOT / "scripts" / "gpu_wheels.sh").read_text(), re.M).group(1).split()
# what the check runs: mixed_precision.py's imports, one training epoch through the CLI, and tests/test_cuda.py
# itself, CPU against CPU (HQC_CUDA_TEST_DEVICE=cpu), so that the imports inside its tests count too (session 42:
# input_jacobian's module imported mitiq and qiskit-aer, which the GPU machine lacks)
CHECK = """
import os, runpy, sys
os.environ["HQC_CUDA_TEST_DEVICE"] = "cpu"
runpy.run_path("benchmarks/mixed_precision.py", run_name="imported")
sys.argv = ["hqc-qiskit", "train", "runs/small_hqc_cz.yaml", "-o", "output_dir={out}", "-o", "data.max_train=4",
            "-o", "data.max_val=2", "-o", "train.max_epochs=1", "-o", "train.num_threads=1", "--no-progress"]
try:
    runpy.run_module("hqc_qiskit.cli", run_name="__main__")
except SystemExit as done:
    if done.code:
        raise
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests/test_cuda.py"]))
"""


def _run_guarded(wheels: list[str], out) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(GUARD), str(ROOT)]), "HQC_GPU_WHEEL_NAMES": " ".join(wheels)}
    return subprocess.run([sys.executable, "-c", CHECK.format(out=out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_gpu_check_needs_only_the_gpu_machines_packages_and_the_wheels(tmp_path):
    assert "emcee" in WHEELS and "qiskit" in WHEELS
    done = _run_guarded(WHEELS, tmp_path / "run")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert (tmp_path / "run" / "metrics.csv").exists()
    # test_cuda.py ran and every test passed: pytest would name skips, failures or errors in this line
    assert re.search(r"^\d+ passed(, \d+ warnings?)? in ", done.stdout, re.M), done.stdout[-3000:]


def test_the_guard_refuses_a_package_the_gpu_machine_lacks(tmp_path):
    done = _run_guarded([w for w in WHEELS if w != "vesin"], tmp_path / "run")   # the neighbour lists
    assert done.returncode != 0
    assert "vesin is not on the GPU machine" in done.stderr
