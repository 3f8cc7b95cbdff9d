"""Float32 weight gradients of the exact engine against its float64 values, per ansatz.

Prints the largest |d<Z_q>/dw| error in float32 twice: with the engine's chunked gate-gradient sum
(what training uses) and with one plain float32 reduction per gate (torch's own backward of the
same gate application), so the effect of the chunking is measured side by side on this machine;
then the time of one training pass of a readout (1,280 atoms: forward, forces, backward; best of 5,
2 threads) with each, for cz and qft_cz.

    python docs/evidence/float32_weight_gradients.py
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from hqc_qiskit.model.readouts import QuantumReadout
from hqc_qiskit.quantum import exact
from hqc_qiskit.quantum.circuits import ansatz_names


def jacobian_w(engine: exact.ExactEngine, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(
        lambda ww: engine.expectations_from_columns(x, engine.unitary_columns(ww)), w).double()


@contextlib.contextmanager
def gate_gradients(mode: str):
    """'chunked': the engine as shipped; 'plain': torch's own backward of the gate application (one reduction)."""
    original = exact._ApplyParametricGate.apply
    if mode == "plain":
        exact._ApplyParametricGate.apply = staticmethod(exact._apply)
    try:
        yield
    finally:
        exact._ApplyParametricGate.apply = original


def main() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.uniform(-np.pi, np.pi, (3, 8)), rng.uniform(0, 2 * np.pi, 24)
    x64, w64 = torch.tensor(x), torch.tensor(w)
    print(f"{'ansatz':8s} {'chunked (engine)':>17s} {'plain float32':>14s}")
    for name in ansatz_names():
        engine = exact.ExactEngine(exact.compiled_ansatz(name, 8, 3))
        reference = jacobian_w(engine, x64, w64)
        error = {}
        for mode in ("chunked", "plain"):
            with gate_gradients(mode):
                error[mode] = (jacobian_w(engine, x64.float(), w64.float()) - reference).abs().max().item()
        print(f"{name:8s} {error['chunked']:17.2e} {error['plain']:14.2e}")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    for name in ("cz", "qft_cz"):
        readout, h = QuantumReadout(16, ansatz=name), torch.randn(1280, 16, requires_grad=True)
        times = {"chunked": [], "plain": []}
        for _ in range(5):
            for mode in times:  # interleaved, so machine drift hits both alike
                with gate_gradients(mode):
                    t = time.perf_counter()
                    (g,) = torch.autograd.grad(readout(h).sum(), h, create_graph=True)
                    g.pow(2).sum().backward()
                    times[mode].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items()}
        print(f"{name}: readout training pass {best['chunked']:.4f} s chunked, {best['plain']:.4f} s plain "
              f"(ratio {best['chunked'] / best['plain']:.2f})")


if __name__ == "__main__":
    main()
