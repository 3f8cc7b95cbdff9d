"""The edge tensor product of the interaction layer, computed path by path from split (not sliced) inputs.

Numerically the same operation as e3nn's ``o3.TensorProduct`` with 'uvu' instructions and per-edge
weights (tested against it), and built from that module's own instructions, path weights and
Wigner 3j symbols. Why it exists: e3nn's generated code takes every path's input and weight block
as a slice of one tensor; the backward of each slice allocates and fills a zero tensor the size of
the whole input. With the paper's irreps (36 paths, 4832 weights per edge) and force training
(double backward), those fills were 38% of a training step (benchmarks/results/profile_cmlp.txt).
``torch.split`` has one backward (a concatenation) for all blocks together.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


class SplitUVUTensorProduct(nn.Module):
    """x1 (M, irreps_in1) x x2 (M, irreps_in2; every multiplicity 1) with weights (M, weight_numel) -> (M, irreps_out).

    ``reference`` is the e3nn TensorProduct (uvu paths, shared_weights=False) whose operation this
    computes; only its instruction list and constants are used."""

    def __init__(self, reference: o3.TensorProduct):
        super().__init__()
        self.irreps_in1, self.irreps_in2, self.irreps_out = reference.irreps_in1, reference.irreps_in2, reference.irreps_out
        if any(mul != 1 for mul, _ in self.irreps_in2):
            raise ValueError("SplitUVUTensorProduct needs multiplicity 1 in the second input (spherical harmonics)")
        if any(ins.connection_mode != "uvu" or not ins.has_weight for ins in reference.instructions):
            raise ValueError("SplitUVUTensorProduct implements weighted 'uvu' paths only")
        self.weight_numel = reference.weight_numel
        self.split1 = [mul_ir.dim for mul_ir in self.irreps_in1]
        self.split2 = [mul_ir.dim for mul_ir in self.irreps_in2]
        self.paths = []          # (i_in1, i_in2, i_out, path_weight) in the flat weight order
        self.weight_sizes = []
        for k, ins in enumerate(reference.instructions):
            mul_ir1, mul_ir2, mul_ir_out = self.irreps_in1[ins.i_in1], self.irreps_in2[ins.i_in2], self.irreps_out[ins.i_out]
            self.register_buffer(f"w3j_{k}", o3.wigner_3j(mul_ir1.ir.l, mul_ir2.ir.l, mul_ir_out.ir.l), persistent=False)
            self.paths.append((ins.i_in1, ins.i_in2, ins.i_out, float(ins.path_weight)))
            self.weight_sizes.append(mul_ir1.mul)
        if sum(self.weight_sizes) != self.weight_numel:
            raise ValueError("unexpected weight layout in the reference tensor product")
        self.out_dims = [(mul_ir.mul, mul_ir.ir.dim) for mul_ir in self.irreps_out]
        self._register_load_state_dict_pre_hook(self._drop_e3nn_constants)

    @staticmethod
    def _drop_e3nn_constants(state_dict, prefix, *_args):
        """Checkpoints written with e3nn's module hold its constants (an empty weight, the output mask,
        compiled Wigner 3j symbols); they carry no learned values, so loading ignores them."""
        for key in [k for k in state_dict if k.startswith(prefix)]:
            rest = key[len(prefix):]
            if rest in ("weight", "output_mask") or rest.startswith("_compiled_main"):
                del state_dict[key]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.blocks(x1, x2, weights), dim=1)

    def blocks(self, x1: torch.Tensor, x2: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor]:
        """The output as a list of (M, mul * dim) blocks, one per output irrep. Concatenating per-edge
        blocks costs a full-size zero fill per block in the double backward (the cat's backward is a
        slice), so callers that reduce over edges first should reduce each block, then concatenate."""
        m = x1.shape[0]
        x1s = [b.reshape(m, mul_ir.mul, mul_ir.ir.dim) for b, mul_ir in zip(torch.split(x1, self.split1, dim=1), self.irreps_in1)]
        x2s = torch.split(x2, self.split2, dim=1)                       # (M, 2l+1) each
        ws = torch.split(weights, self.weight_sizes, dim=1)             # (M, mul) each
        outs: list[torch.Tensor | None] = [None] * len(self.out_dims)
        for k, (i1, i2, i_out, path_weight) in enumerate(self.paths):
            w3j = getattr(self, f"w3j_{k}")                             # (2l1+1, 2l2+1, 2l_out+1)
            y = torch.einsum("zj,ijk->zik", x2s[i2], w3j)               # (M, 2l1+1, 2l_out+1): cheap, no multiplicity
            r = torch.bmm(x1s[i1], y) * (ws[k] * path_weight).unsqueeze(-1)   # (M, mul, 2l_out+1)
            outs[i_out] = r if outs[i_out] is None else outs[i_out] + r
        return [o.reshape(m, mul * dim) if o is not None else x1.new_zeros(m, mul * dim)
                for o, (mul, dim) in zip(outs, self.out_dims)]
