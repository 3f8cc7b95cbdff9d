"""Float32 weight gradients of the exact engine against its float64 values, per ansatz.

Prints the largest |d<Z_q>/dw| error in float32 twice: with the engine's chunked gate-gradient sum
(what training uses) and with one plain float32 reduction per gate (torch's own backward of the
same gate application), so the effect of the chunking is measured side by side on this machine.

    python docs/evidence/float32_weight_gradients.py
"""

from __future__ import annotations

import numpy as np
import torch

from hqc_qiskit.quantum import exact
from hqc_qiskit.quantum.circuits import ansatz_names


def jacobian_w(engine: exact.ExactEngine, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(
        lambda ww: engine.expectations_from_columns(x, engine.unitary_columns(ww)), w).double()


def main() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.uniform(-np.pi, np.pi, (3, 8)), rng.uniform(0, 2 * np.pi, 24)
    x64, w64 = torch.tensor(x), torch.tensor(w)
    print(f"{'ansatz':8s} {'chunked (engine)':>17s} {'plain float32':>14s}")
    for name in ansatz_names():
        engine = exact.ExactEngine(exact.compiled_ansatz(name, 8, 3))
        reference = jacobian_w(engine, x64, w64)
        chunked = (jacobian_w(engine, x64.float(), w64.float()) - reference).abs().max().item()
        original = exact._ApplyParametricGate.apply
        exact._ApplyParametricGate.apply = staticmethod(exact._apply)  # torch's backward: one reduction
        try:
            plain = (jacobian_w(engine, x64.float(), w64.float()) - reference).abs().max().item()
        finally:
            exact._ApplyParametricGate.apply = original
        print(f"{name:8s} {chunked:17.2e} {plain:14.2e}")


if __name__ == "__main__":
    main()
