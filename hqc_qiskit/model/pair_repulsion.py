"""Optional short-range pair repulsion added to the learned energy: the ZBL screened nuclear repulsion.

The training data of a liquid holds few pairs closer than about 1.9 Å (Si at 3000 K), so below that a learned
potential extrapolates, and at high pressure it may let two atoms come too close (docs/results.md "Short-range
repulsion"). A fixed physical pair term there, as NequIP and MACE offer, gives the model the right shape where the
data are silent; the network learns what DFT adds to it.

    E_pair = 1/2 sum_{i != j} phi(r_ij) u(r_ij / r_max)      (eV; every pair once, as the edge list holds both ways)
    phi(r) = k_e Z_i Z_j / r * sum_m c_m exp(-d_m r / a),   a = 0.46850 Å / (Z_i^0.23 + Z_j^0.23)

with the universal ZBL coefficients (Ziegler, Biersack, Littmark 1985; as LAMMPS' pair_style zbl), k_e = e^2 /
(4 pi eps0) = Hartree * Bohr, r_max = the sum of the two covalent radii (ase.data.covalent_radii; 2.22 Å for Si-Si)
and u the polynomial envelope with p = 6 (MACE's choice for its ZBL term), so phi u goes smoothly to zero, with
its first derivatives, before the nearest-neighbour shell of a covalent solid or liquid. It has no trainable
weights: checkpoints without it load into a model with it (fine-tuning with ``model.pair_repulsion: zbl``).
Hand-written because it is a few lines of torch on the model's own edge list; no library provides it for e3nn.
"""

from __future__ import annotations

import torch
from ase.data import atomic_numbers, covalent_radii
from ase.units import Bohr, Hartree
from torch import nn

from .radial import PolynomialEnvelope

ZBL_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)
ZBL_SCREENING_LENGTH = 0.46850   # Å: 0.8854 Bohr
ZBL_ENVELOPE_P = 6
COULOMB_EV_ANGSTROM = Hartree * Bohr   # e^2 / (4 pi eps0) = 14.3996 eV Å


class ZBLRepulsion(nn.Module):
    """Per-atom ZBL energy (N,) eV from the edge list: half of each edge's phi(r) u(r / r_max) goes to its receiver
    (the edge list has every pair in both directions). ``species``: element symbols in the model's order."""

    def __init__(self, species: list[str]):
        super().__init__()
        f64 = torch.float64   # the constants to full precision whatever the default dtype; cast to r's in use
        z = torch.tensor([float(atomic_numbers[s]) for s in species], dtype=f64)
        radii = torch.tensor([float(covalent_radii[atomic_numbers[s]]) for s in species], dtype=f64)
        self.register_buffer("z", z, persistent=False)
        self.register_buffer("covalent_radius", radii, persistent=False)
        self.register_buffer("coefficients", torch.tensor(ZBL_COEFFICIENTS, dtype=f64), persistent=False)
        self.register_buffer("exponents", torch.tensor(ZBL_EXPONENTS, dtype=f64), persistent=False)
        self.envelope = PolynomialEnvelope(ZBL_ENVELOPE_P)

    def pair_energy(self, r: torch.Tensor, species_i: torch.Tensor, species_j: torch.Tensor) -> torch.Tensor:
        """phi(r) u(r / r_max) (M,) eV of pairs at distances r (M,) Å between species indices ``species_i``,
        ``species_j`` (M,)."""
        zi, zj = self.z[species_i].to(r.dtype), self.z[species_j].to(r.dtype)
        a = ZBL_SCREENING_LENGTH / (zi.pow(0.23) + zj.pow(0.23))                       # (M,) Å
        x = r / a
        screening = (self.coefficients.to(r.dtype) * torch.exp(-self.exponents.to(r.dtype) * x[:, None])).sum(-1)
        r_max = (self.covalent_radius[species_i] + self.covalent_radius[species_j]).to(r.dtype)
        return COULOMB_EV_ANGSTROM * zi * zj / r * screening * self.envelope(r / r_max)

    def forward(self, edge_len: torch.Tensor, species: torch.Tensor, senders: torch.Tensor,
                receivers: torch.Tensor) -> torch.Tensor:
        """edge_len (M,) Å, species (N,) indices, senders/receivers (M,) -> per-atom energy (N,) eV."""
        pair = self.pair_energy(edge_len, species[receivers], species[senders])
        node = torch.zeros(species.shape[0], dtype=edge_len.dtype, device=edge_len.device)
        return node.index_add(0, receivers, 0.5 * pair)
