"""Radial basis: Bessel functions times a smooth polynomial envelope (DimeNet / NequIP form)."""

from __future__ import annotations

import math

import torch
from torch import nn


class PolynomialEnvelope(nn.Module):
    """u(d) = 1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1) - p(p+1)/2 d^(p+2), d = r / r_cut; zero beyond 1.

    u and its first p derivatives are continuous at the cutoff (u = u' = 0 there for p >= 1), so
    energies and forces stay smooth when neighbours cross it.
    """

    def __init__(self, p: int = 2):
        super().__init__()
        self.p = float(p)

    def forward(self, d: torch.Tensor) -> torch.Tensor:  # (M,) -> (M,)
        p = self.p
        u = (1.0 - (p + 1) * (p + 2) / 2 * d.pow(p) + p * (p + 2) * d.pow(p + 1) - p * (p + 1) / 2 * d.pow(p + 2))
        return u * (d < 1.0)


class BesselBasis(nn.Module):
    """sqrt(2/r_cut) sin(n pi r / r_cut) / r for n = 1..n_basis, times the envelope.

    Input r: (M,) in Å; output (M, n_basis). Frequencies are trainable as in NequIP.
    """

    def __init__(self, r_cut: float, n_basis: int = 8, envelope_p: int = 2, trainable: bool = True):
        super().__init__()
        self.r_cut = float(r_cut)
        freqs = torch.arange(1, n_basis + 1, dtype=torch.get_default_dtype()) * math.pi
        self.freqs = nn.Parameter(freqs, requires_grad=trainable)
        self.prefactor = math.sqrt(2.0 / self.r_cut)
        self.envelope = PolynomialEnvelope(envelope_p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        d = r / self.r_cut
        basis = self.prefactor * torch.sin(self.freqs * d.unsqueeze(-1)) / r.unsqueeze(-1)
        return basis * self.envelope(d).unsqueeze(-1)
