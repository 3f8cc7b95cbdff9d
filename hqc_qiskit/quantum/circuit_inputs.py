"""The classical half of shot-based forces: the readout circuits' inputs x(r, eps) (K, n) rad as a function of
the positions r (N, 3) Å and the strain eps (3, 3), and their exact derivatives by autograd (the Jacobian by
forward mode, vector-Jacobian products, the fixed pair repulsion's gradient). No circuit runs here and nothing of
qiskit, qiskit-aer or mitiq is imported: torch and the model only (the GPU check runs this on CUDA without them).
``shot_forces`` combines these with the circuits' parameter-shift gradients."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from ..data import keys as K
from ..data.graph import atoms_to_graph, collate, to_device
from ..model.potential import apply_strain


def structure_graph(model, atoms) -> dict:
    """``atoms`` as a one-structure batch for ``model``: its cutoff and species, its device and dtype."""
    cfg, p = model.config, next(model.parameters())
    return to_device(collate([atoms_to_graph(atoms, cfg.cutoff, cfg.species)]), p.device, p.dtype)


class _InputRecorder(nn.Module):
    """Stands in for a readout's circuit: records its input angles (N, n), returns zeros (N, n)."""

    def __init__(self, n_qubits: int, sink: list):
        super().__init__()
        self.n_qubits, self.sink = n_qubits, sink

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        self.sink.append(angles)
        return angles.new_zeros(angles.shape[0], self.n_qubits)


@contextlib.contextmanager
def _circuits_recorded(model, sink: list):
    """Within the block the model's readout circuits only record their inputs (the classical part runs alone)."""
    saved = [r.circuit for r in model.readouts]
    try:
        for r in model.readouts:
            r.circuit = _InputRecorder(r.decode.in_features, sink)
        yield
    finally:
        for r, circuit in zip(model.readouts, saved):
            r.circuit = circuit


@contextlib.contextmanager
def _parameters_frozen(model):
    """Within the block no parameter requires grad: the derivatives wanted are with respect to positions and
    strain only, and a graph back to trainable weights would be kept alive by every Jacobian chunk (memory
    grew by about 1 GB per chunk on the paper model until the process was killed)."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.requires_grad_(False)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _circuit_inputs_fn(model, graph: dict, stress: bool):
    """f(z) -> circuit inputs (K, n) rad, readouts in order; z = positions (3N,) Å [+ strain (9,)], flat."""
    sink: list[torch.Tensor] = []
    n_pos = graph[K.POSITIONS].numel()

    def inputs(z):
        sink.clear()
        with _circuits_recorded(model, sink):
            model(_graph_at(graph, z, n_pos, stress), compute_forces=False)
        return torch.cat(sink)

    return inputs, _flat_coordinates(graph, stress)


def _graph_at(graph: dict, z: torch.Tensor, n_pos: int, stress: bool) -> dict:
    """``graph`` with the flat coordinates z = positions (3N,) Å [+ strain (9,)] applied."""
    g = dict(graph)
    positions = z[:n_pos].reshape(-1, 3)
    if stress:
        g[K.POSITIONS], g[K.CELL] = apply_strain(positions, graph[K.CELL], z[n_pos:].reshape(1, 3, 3), graph[K.BATCH])
    else:
        g[K.POSITIONS] = positions
    return g


def pair_gradient(model, atoms, stress: bool) -> np.ndarray:
    """d E_pair / d(r[, eps]) (3N [+ 9],) eV/Å [eV] of the model's fixed pair repulsion (zeros without one): a
    classical term of the energy, exact, that the circuits' parameter-shift gradients do not contain."""
    if model.pair_repulsion is None:   # no graph to build: the gradient is zero
        return np.zeros(3 * len(atoms) + (9 if stress else 0))
    graph = structure_graph(model, atoms)
    z = _flat_coordinates(graph, stress).requires_grad_(True)
    with _parameters_frozen(model):
        out = model(_graph_at(graph, z, graph[K.POSITIONS].numel(), stress), compute_forces=False)
        (grad,) = torch.autograd.grad(out["pair_energy"].sum(), z)
    return grad.detach().double().cpu().numpy()


def _flat_coordinates(graph: dict, stress: bool) -> torch.Tensor:
    z = graph[K.POSITIONS].detach().reshape(-1)
    return torch.cat([z, z.new_zeros(9)]) if stress else z


def _peak_rss_bytes() -> int:
    """This process's peak resident memory (bytes); 0 where the platform does not report it."""
    try:
        import resource
    except ImportError:   # Windows
        return 0
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024   # Linux reports kB


def _tangent_chunk(run_one, device: torch.device, max_chunk: int = 16) -> int:
    """How many tangents one vectorized jvp may carry: half the free memory of ``device`` over what one tangent
    took (measured by running ``run_one``; on the CPU the process's earlier peak bounds it when that was higher).
    Hand-written because torch reports no CPU allocator statistics; 16 is where batching stops paying off."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run_one()
        per_tangent = torch.cuda.max_memory_allocated(device) - before
        free = torch.cuda.mem_get_info(device)[0]
    else:
        import psutil

        rss, peak_before = psutil.Process().memory_info().rss, _peak_rss_bytes()
        run_one()
        per_tangent = max(_peak_rss_bytes(), peak_before) - rss
        free = psutil.virtual_memory().available
    return int(np.clip(free // 2 // max(per_tangent, 1), 1, max_chunk))


def input_jacobian(model, atoms, stress: bool = False, chunk: int | None = None) -> np.ndarray:
    """J = dx/d(r[, eps]) of the circuit inputs: (K * n, 3N) rad/Å, with stress (K * n, 3N + 9) (the last 9
    columns d/d strain, rad). Forward-mode autograd over the 3N (+9) coordinates in the model's precision,
    ``chunk`` tangents at a time (default: as many as half the free memory holds, at most 16)."""
    fn, z = _circuit_inputs_fn(model, structure_graph(model, atoms), stress)
    basis = torch.eye(z.numel(), dtype=z.dtype, device=z.device)

    def column(tangent):
        return torch.func.jvp(fn, (z,), (tangent,))[1]

    with _parameters_frozen(model):
        if chunk is None:
            chunk = _tangent_chunk(lambda: column(basis[0]), z.device)
        jac = torch.func.vmap(column, chunk_size=chunk)(basis)                 # (P, K, n)
    return jac.reshape(len(basis), -1).T.detach().double().cpu().numpy()


def input_vjps(model, atoms, gs: list[np.ndarray], stress: bool) -> list[np.ndarray]:
    """J^T g (3N [+ 9],) for each gradient g (K, n) eV/rad: one forward pass and a backward pass each, no Jacobian."""
    fn, z = _circuit_inputs_fn(model, structure_graph(model, atoms), stress)
    z = z.requires_grad_(True)
    out = []
    with _parameters_frozen(model):
        x = fn(z)
        for i, g in enumerate(gs):
            (grad,) = torch.autograd.grad(x, z, grad_outputs=torch.as_tensor(g, dtype=x.dtype, device=x.device),
                                          retain_graph=i < len(gs) - 1)
            out.append(grad.detach().double().cpu().numpy())
    return out
