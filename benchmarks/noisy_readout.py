"""Noisy readout (3^n coefficients, quantum/noisy_readout.py) against the exact engine, side by side.

What a force-training step asks of one readout with fixed circuit weights, for B inputs (B = 1280: a batch
of 20 structures x 64 atoms): z = f(x), E = sum c . z, g = dE/dx with create_graph, loss = sum g^2,
loss.backward() to x. Exact engine with frozen weights (its unitary columns built once per call, as in
inference) and with trainable weights (as in ordinary training), against the noisy readout's contraction.
Also the one-off cost of the coefficients (3^n noisy circuits on the batched density-matrix engine).

Usage: python benchmarks/noisy_readout.py [--backend aer-noise:fake_brisbane@ibm_eagle_compact] [--batch 1280]
Output: benchmarks/results/noisy_readout.json (ratios noisy / exact measured in the same run)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, write_results  # noqa: E402

from hqc_qiskit.quantum.backends import make_backend  # noqa: E402
from hqc_qiskit.quantum.exact import ExactCircuit  # noqa: E402
from hqc_qiskit.quantum.noisy_readout import contract, noisy_coefficients  # noqa: E402


def force_step(f, x0: torch.Tensor, c: torch.Tensor):
    def call():
        x = x0.clone().requires_grad_(True)
        energy = (f(x) * c).sum()
        (g,) = torch.autograd.grad(energy, x, create_graph=True)
        g.pow(2).sum().backward()
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="aer-noise:fake_brisbane@ibm_eagle_compact")
    parser.add_argument("--ansatz", default="cz")
    parser.add_argument("--batch", type=int, default=1280)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    n, layers = 8, 3
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 2 * np.pi, size=(layers, n))

    start = time.perf_counter()
    coefficients = torch.as_tensor(noisy_coefficients(make_backend(args.backend), args.ansatz, n, layers, weights), dtype=dtype)
    build_s = time.perf_counter() - start

    x0 = torch.as_tensor(rng.uniform(-np.pi, np.pi, size=(args.batch, n)), dtype=dtype)
    c = torch.as_tensor(rng.normal(size=n), dtype=dtype)
    torch.set_default_dtype(dtype)   # the engines' buffers in the benchmark's precision, as build_model makes them
    trainable = ExactCircuit(args.ansatz, n, layers, torch.as_tensor(weights))
    frozen = ExactCircuit(args.ansatz, n, layers, torch.as_tensor(weights)).requires_grad_(False)
    times = {"noisy": best_time(force_step(lambda x: contract(coefficients, x), x0, c), repeats=5),
             "exact_frozen_weights": best_time(force_step(frozen, x0, c), repeats=5),
             "exact_trainable_weights": best_time(force_step(trainable, x0, c), repeats=5)}
    ratios = {"noisy_over_exact_frozen": times["noisy"] / times["exact_frozen_weights"],
              "noisy_over_exact_trainable": times["noisy"] / times["exact_trainable_weights"]}
    for key, value in times.items():
        print(f"{key:>26}: {value * 1000:8.1f} ms per force-training pass of {args.batch} inputs")
    for key, value in ratios.items():
        print(f"{key:>26}: {value:.3f}")
    print(f"coefficients ({3**n} noisy circuits on {args.backend}): {build_s:.1f} s, once per readout")
    write_results("noisy_readout", {"settings": vars(args), "seconds": times, "ratios": ratios,
                                    "coefficients_build_seconds": build_s})


if __name__ == "__main__":
    main()
