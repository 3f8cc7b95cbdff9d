"""e3nn tensor products whose second input is scalars only (0e), computed as matrix products.

The interaction layer has two: the self-connection (``FullyConnectedTensorProduct`` of the features
with the one-hot species, 'uvw' paths) and the product with the layer-0 embedding (``TensorProduct``,
'uvu' paths). With a scalar second input the Clebsch-Gordan coefficient of each path is c * identity
(c = 1/sqrt(2l+1)), so a path is a matrix product over the multiplicities. e3nn's generated code runs
general einsums on ``narrow``-ed blocks instead (each narrow fills a full-size zero tensor in the
backward); this module gives the same numbers (tested) from the same parameters under the same
state-dict names, at a third of the cost.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


class ScalarPartnerTensorProduct(nn.Module):
    """x1 (N, irreps_in1) x x2 (N, irreps_in2; all 0e) -> (N, irreps_out), the ``reference`` product."""

    few_scalars = 4   # 'uvw' paths with at most this many scalars (species) use one weight-shared product

    def __init__(self, reference: o3.TensorProduct):
        super().__init__()
        if not (reference.internal_weights and reference.shared_weights):
            raise ValueError("ScalarPartnerTensorProduct needs internal, shared weights")
        if any(ir != o3.Irrep("0e") for _, ir in reference.irreps_in2):
            raise ValueError("ScalarPartnerTensorProduct needs a second input made of 0e scalars only")
        self.irreps_in1, self.irreps_in2, self.irreps_out = reference.irreps_in1, reference.irreps_in2, reference.irreps_out
        self.weight = reference.weight
        self.register_buffer("output_mask", reference.output_mask.clone())
        self.paths = []    # (i_in1, i_in2, i_out, mode, weight start, path shape, alpha)
        start = 0
        for ins in reference.instructions:
            if ins.connection_mode not in ("uvw", "uvu") or not ins.has_weight:
                raise ValueError(f"ScalarPartnerTensorProduct implements weighted 'uvw' and 'uvu' paths, not {ins.connection_mode!r}")
            l_in, l_out = self.irreps_in1[ins.i_in1].ir.l, self.irreps_out[ins.i_out].ir.l
            cg = o3.wigner_3j(l_in, 0, l_out)[:, 0, :]               # (2l+1, 2l+1) = c * identity
            c = float(cg[0, 0])
            if l_in != l_out or not torch.allclose(cg, c * torch.eye(2 * l_in + 1, dtype=cg.dtype), atol=1e-6):
                raise ValueError("unexpected Clebsch-Gordan coefficients for a scalar second input")
            numel = 1
            for n in ins.path_shape:
                numel *= n
            self.paths.append((ins.i_in1, ins.i_in2, ins.i_out, ins.connection_mode, start, tuple(ins.path_shape),
                               ins.path_weight * c))
            start += numel
        self.gated = self._plan_gated()

    def _plan_gated(self) -> bool:
        """Plan the one-shot form of a product made of 'uvu' paths from one block of scalars, one path
        per output irrep (the product with the layer-0 embedding): every output column is an input
        column times one gate g = x2 @ W (N, sum of path multiplicities). Returns whether it applies."""
        if not self.paths or any(mode != "uvu" or i2 != self.paths[0][1] for _, i2, _, mode, _, _, _ in self.paths):
            return False
        if sorted(i_out for _, _, i_out, _, _, _, _ in self.paths) != list(range(len(self.irreps_out))):
            return False
        v = self.irreps_in2[self.paths[0][1]].mul
        in_starts = [sl.start for sl in self.irreps_in1.slices()]
        by_output = {i_out: (i1, start, shape[0], alpha) for i1, _, i_out, _, start, shape, alpha in self.paths}
        weight_index, weight_alpha, in_columns, gate_columns, g0 = [], [], [], [], 0
        for i_out, mul_ir in enumerate(self.irreps_out):
            i1, start, u, alpha = by_output[i_out]
            d = mul_ir.ir.dim
            # W_p is stored (u, v) row-major; the gate matrix wants its transpose (v, u), block p
            weight_index.append(start + torch.arange(u)[None, :] * v + torch.arange(v)[:, None])
            weight_alpha.append(torch.full((u,), float(alpha)))
            in_columns += [in_starts[i1] + c * d + k for c in range(u) for k in range(d)]
            gate_columns += [g0 + c for c in range(u) for _ in range(d)]
            g0 += u
        self.register_buffer("gate_weight_index", torch.cat(weight_index, dim=1), persistent=False)   # (v, U)
        self.register_buffer("gate_alpha", torch.cat(weight_alpha), persistent=False)                  # (U,)
        self.register_buffer("gate_in_columns", torch.tensor(in_columns, dtype=torch.long), persistent=False)
        self.register_buffer("gate_columns", torch.tensor(gate_columns, dtype=torch.long), persistent=False)
        return True

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        n = x1.shape[0]
        if self.gated:   # three gathers and two products for the whole module (see _plan_gated)
            i2 = self.paths[0][1]
            sl = self.irreps_in2.slices()[i2]
            w = self.weight[self.gate_weight_index] * self.gate_alpha.to(self.weight.dtype)       # (v, U)
            gate = x2[:, sl.start:sl.stop] @ w                                                      # (N, U)
            return x1.index_select(1, self.gate_in_columns) * gate.index_select(1, self.gate_columns)
        x1s = [b.reshape(n, mul_ir.mul, mul_ir.ir.dim) for b, mul_ir in
               zip(torch.split(x1, [mul_ir.dim for mul_ir in self.irreps_in1], dim=1), self.irreps_in1)]
        x2s = torch.split(x2, [mul_ir.dim for mul_ir in self.irreps_in2], dim=1)     # (N, v) each
        outs: list[torch.Tensor | None] = [None] * len(self.irreps_out)
        for i1, i2, i_out, mode, start, shape, alpha in self.paths:
            u, v = shape[0], shape[1]
            if mode == "uvu":
                w = self.weight[start:start + u * v].view(u, v)
                r = x1s[i1] * (x2s[i2] @ w.t() * alpha).unsqueeze(-1)                 # (N, u, d)
            else:
                w_out = shape[2]
                w = self.weight[start:start + u * v * w_out].view(u, v, w_out) * alpha
                if v <= self.few_scalars:   # e.g. one-hot species: one shared-weight matrix product
                    y = (x1s[i1].transpose(1, 2) @ w.view(u, v * w_out)).view(n, -1, v, w_out)   # (N, d, v, w)
                    r = (y * x2s[i2].view(n, 1, v, 1)).sum(2).transpose(1, 2)                  # (N, w, d)
                else:                       # contract the scalars first, then one product per atom
                    z = (x2s[i2] @ w.permute(1, 0, 2).reshape(v, u * w_out)).view(n, u, w_out)
                    r = torch.bmm(z.transpose(1, 2), x1s[i1])                                  # (N, w, d)
            outs[i_out] = r if outs[i_out] is None else outs[i_out] + r
        return torch.cat([o.reshape(n, mul_ir.dim) if o is not None else x1.new_zeros(n, mul_ir.dim)
                          for o, mul_ir in zip(outs, self.irreps_out)], dim=1)
