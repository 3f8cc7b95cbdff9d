"""The potential: species embedding -> interaction layers -> per-layer readouts -> E, F = -dE/dr.

E = sum_i sum_t E_i^(t) + sum_i E0[species_i] [+ E_pair]   (eV);   forces by autograd (eV/Å).
E_pair: the optional fixed ZBL repulsion (``model.pair_repulsion``, :mod:`.pair_repulsion`).
The model keeps its :class:`~hqc_qiskit.config.ModelConfig` so a checkpoint alone rebuilds it.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from ..config import ModelConfig
from ..data import keys as K
from ..errors import EngineError
from .interaction import InteractionBlock, scalar_channels
from .pair_repulsion import ZBLRepulsion
from .radial import BesselBasis
from .readouts import make_readout


class HQCPotential(nn.Module):
    """Equivariant message-passing potential with classical or quantum per-layer readouts."""

    def __init__(self, config: ModelConfig | dict):
        super().__init__()
        config = ModelConfig.model_validate(config) if isinstance(config, dict) else config
        self.config = config
        n_species = len(config.species)
        self.cutoff = config.cutoff
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.lmax)
        self.irreps_h0 = o3.Irreps(f"{config.embedding_dim}x0e")
        irreps_hidden = o3.Irreps(config.hidden_irreps)
        self.embedding = nn.Linear(n_species, config.embedding_dim, bias=False)
        self.spherical_harmonics = o3.SphericalHarmonics(self.irreps_sh, normalize=True, normalization="component")
        self.radial = BesselBasis(config.cutoff, config.n_radial, config.envelope_p)
        self.layers = nn.ModuleList()
        self.readouts = nn.ModuleList()
        irreps_in = self.irreps_h0
        readout_options = config.readout.model_dump(exclude={"kind"})
        for t in range(config.n_layers):
            block = InteractionBlock(
                irreps_in, irreps_hidden, self.irreps_sh, self.irreps_h0, n_species,
                config.n_radial, config.radial_mlp, config.avg_num_neighbors, config.tensor_product,
                scalar_output_only=t == config.n_layers - 1,   # the readouts read only its 0e channels
            )
            self.layers.append(block)
            irreps_in = block.irreps_out
            self.readouts.append(make_readout(config.readout.kind, len(scalar_channels(irreps_in)), **readout_options))
        self.pair_repulsion = ZBLRepulsion(config.species) if config.pair_repulsion == "zbl" else None
        self.register_buffer("hidden_scalar_idx", scalar_channels(irreps_hidden), persistent=False)
        e0 = config.reference_energies
        values = [e0[s] for s in config.species] if isinstance(e0, dict) else [0.0] * n_species
        self.register_buffer("reference_energies", torch.tensor(values, dtype=torch.get_default_dtype()))

    @property
    def supports_double_backward(self) -> bool:
        return all(getattr(r, "supports_double_backward", True) for r in self.readouts)

    def forward(self, batch: dict, compute_forces: bool = True, create_graph: bool = False,
                compute_stress: bool = False) -> dict:
        """batch: graph dict (see data/keys.py). Returns energy (B,), forces (N, 3), node_energy (N,),
        layer_energy (N, n_layers), with a ``pair_repulsion`` pair_energy (N,) (already in node_energy), and with
        ``compute_stress`` stress (B, 3, 3) in eV/Å^3 = (1/V) dE/dε (ASE's sign: positive under tension; NaN for
        structures without a cell)."""
        if create_graph and not self.supports_double_backward:
            raise EngineError(
                "a readout engine of this model ('qnn': Qiskit EstimatorQNN + TorchConnector) cannot give "
                "second derivatives, which force training needs; use 'readout.engine: exact' "
                "(numerically identical), or train on energies only (train.forces_weight: 0)"
            )
        positions = batch[K.POSITIONS]
        if compute_forces or compute_stress:
            positions = positions.detach().requires_grad_(True)
        cells = batch[K.CELL]                                                        # (B, 3, 3) Å, rows
        if compute_stress:   # homogeneous strain of atoms and cell; dE/dε at ε = 0 (NequIP/MACE do the same)
            strain = torch.zeros_like(cells, requires_grad=True)                     # (B, 3, 3)
            strained, cells = apply_strain(positions, cells, strain, batch[K.BATCH])
        senders, receivers = batch[K.EDGE_INDEX]
        species = batch[K.SPECIES]
        cell = cells[batch[K.BATCH][receivers]]                                      # (M, 3, 3)
        shift = torch.einsum("mi,mij->mj", batch[K.SHIFTS], cell)                    # (M, 3) Å
        r = strained if compute_stress else positions
        edge_vec = r[senders] - r[receivers] + shift                                 # (M, 3) Å
        edge_len = torch.linalg.norm(edge_vec, dim=-1)                               # (M,)
        sh = self.spherical_harmonics(edge_vec)                                      # (M, sh)
        radial = self.radial(edge_len)                                               # (M, n_radial)
        onehot = nn.functional.one_hot(species, len(self.config.species)).to(positions.dtype)  # (N, S)
        h0 = self.embedding(onehot)                                                  # (N, embedding_dim)
        h = h0
        layer_energies = []
        for layer, readout in zip(self.layers, self.readouts):
            h = layer(h, h0, onehot, sh, radial, senders, receivers)                 # (N, hidden)
            layer_energies.append(readout(h[:, self.hidden_scalar_idx]))             # (N,)
        layer_energy = torch.stack(layer_energies, dim=-1)                           # (N, n_layers)
        node_energy = layer_energy.sum(-1) + self.reference_energies[species]        # (N,) eV
        if self.pair_repulsion is not None:   # no weights: the shot-based estimators take it as a classical term
            pair_energy = self.pair_repulsion(edge_len, species, senders, receivers)  # (N,) eV
            node_energy = node_energy + pair_energy
        n_structures = batch[K.N_STRUCTURES]
        energy = torch.zeros(n_structures, dtype=node_energy.dtype, device=node_energy.device)
        energy = energy.index_add(0, batch[K.BATCH], node_energy)                    # (B,) eV
        out = {"energy": energy, "node_energy": node_energy, "layer_energy": layer_energy}
        if self.pair_repulsion is not None:
            out["pair_energy"] = pair_energy
        if compute_stress:
            grad, de_dstrain = torch.autograd.grad(energy.sum(), [positions, strain], create_graph=create_graph)
            volume = torch.linalg.det(batch[K.CELL]).abs()                           # (B,) Å^3; 0 without a cell
            out["stress"] = de_dstrain / volume.where(volume > 0, torch.nan)[:, None, None]   # (B, 3, 3) eV/Å^3
            out["forces"] = -grad                                                    # (N, 3) eV/Å
        elif compute_forces:
            (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
            out["forces"] = -grad                                                    # (N, 3) eV/Å
        return out


def apply_strain(positions: torch.Tensor, cells: torch.Tensor, strain: torch.Tensor, structure: torch.Tensor):
    """Positions (N, 3) Å and cells (B, 3, 3) Å (rows) under the homogeneous strain (B, 3, 3) (symmetrized);
    ``structure`` (N,) is each atom's structure index. The stress is (1/V) dE/dstrain at strain = 0."""
    sym = 0.5 * (strain + strain.transpose(1, 2))
    return positions + torch.einsum("ni,nij->nj", positions, sym[structure]), cells + torch.bmm(cells, sym)


def build_model(config: ModelConfig | dict) -> HQCPotential:
    """Build the potential in the configured dtype."""
    config = ModelConfig.model_validate(config) if isinstance(config, dict) else config
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return HQCPotential(config)
    finally:
        torch.set_default_dtype(previous)
