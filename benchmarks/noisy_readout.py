"""Noisy readout (3^n coefficients, quantum/noisy_readout.py) against the exact engine, side by side.

What a force-training step asks of one readout with fixed circuit weights, for B inputs (B = 1280: a batch
of 20 structures x 64 atoms): z = f(x), E = sum c . z, g = dE/dx with create_graph, loss = sum g^2,
loss.backward() to x. Exact engine with frozen weights (its unitary columns built once per call, as in
inference) and with trainable weights (as in ordinary training), against the noisy readout's contraction.
Also the cost of the coefficients: the grid construction (3^n noisy circuits forwards on the batched
density-matrix engine) against the Heisenberg one (n observables backwards, quantum/heisenberg.py) in the same
run, and, for trainable circuit weights under noise, the Heisenberg coefficients with their gradient (what each
training step adds per readout).

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
from hqc_qiskit.quantum.heisenberg import HeisenbergReadout  # noqa: E402
from hqc_qiskit.quantum.noisy_readout import contract, grid_coefficients, readout_simulator  # noqa: E402


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

    backend = make_backend(args.backend)
    readout_simulator(backend, args.ansatz, n, layers).circuit         # transpile and reduce once, outside the timings
    start = time.perf_counter()
    grid = grid_coefficients(backend, args.ansatz, n, layers, weights)
    grid_s = time.perf_counter() - start
    start = time.perf_counter()
    engine = HeisenbergReadout(readout_simulator(backend, args.ansatz, n, layers))
    compile_s = time.perf_counter() - start
    w = torch.tensor(weights, requires_grad=True)

    def heisenberg_build():
        with torch.no_grad():
            return engine.coefficients(weights)

    def heisenberg_with_gradient():
        engine.coefficients(w).pow(2).sum().backward()

    build = {"grid_seconds": grid_s, "heisenberg_compile_seconds": compile_s,
             "heisenberg_seconds": best_time(heisenberg_build, repeats=5),
             "heisenberg_with_weight_gradient_seconds": best_time(heisenberg_with_gradient, repeats=5)}
    heisenberg = heisenberg_build().numpy()
    build["max_abs_difference"] = float(np.max(np.abs(heisenberg - grid)))
    coefficients = torch.as_tensor(heisenberg, dtype=dtype)

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
    ratios["heisenberg_over_grid_build"] = build["heisenberg_seconds"] / build["grid_seconds"]
    ratios["heisenberg_with_gradient_over_noisy_pass"] = build["heisenberg_with_weight_gradient_seconds"] / times["noisy"]
    print(f"coefficients on {args.backend}: grid ({3**n} circuits) {grid_s:.1f} s, Heisenberg ({n} observables) "
          f"{build['heisenberg_seconds'] * 1000:.0f} ms (+{compile_s:.1f} s compiling once): "
          f"{ratios['heisenberg_over_grid_build']:.2e}x; largest difference {build['max_abs_difference']:.1e}")
    print(f"with the weight gradient (trainable circuits, per readout and step): "
          f"{build['heisenberg_with_weight_gradient_seconds'] * 1000:.0f} ms, "
          f"{ratios['heisenberg_with_gradient_over_noisy_pass']:.2f}x the noisy force-training pass")
    write_results("noisy_readout", {"settings": vars(args), "seconds": times, "ratios": ratios,
                                    "coefficients": build})


if __name__ == "__main__":
    main()
