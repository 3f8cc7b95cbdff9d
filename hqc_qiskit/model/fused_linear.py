"""e3nn's equivariant linear layer, computed with one matrix product per output irrep.

Numerically the same operation as ``o3.Linear`` (shared, internal weights; tested against it) and
built from that module's own instructions, path weights and parameters, under the same state-dict
names (``weight``, ``bias``, ``output_mask``), so checkpoints load either way. Why it exists:
e3nn's generated code takes every input block as a ``narrow`` of the input and runs one einsum per
path; in the backward each narrow fills a zero tensor the size of the whole input. The interaction
layer's ``linear_down`` has 37 input blocks (the message of every tensor-product path), so one
layer's linear cost 8 ms of a 40 ms inference step (E + F of 64 Si atoms, 2 cores). Here the input
columns of each output irrep are gathered once (``index_select``; backward: one ``index_add``) and
multiplied by the stacked weight blocks.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


class FusedLinear(nn.Module):
    """x (N, irreps_in) -> (N, irreps_out), the same map as the ``reference`` o3.Linear."""

    def __init__(self, reference: o3.Linear):
        super().__init__()
        if not (reference.internal_weights and reference.shared_weights):
            raise ValueError("FusedLinear implements o3.Linear with internal, shared weights only")
        self.irreps_in, self.irreps_out = reference.irreps_in, reference.irreps_out
        self.weight = reference.weight
        if isinstance(reference.bias, nn.Parameter):
            self.bias = reference.bias
        else:                                     # e3nn keeps an empty bias as a buffer
            self.register_buffer("bias", reference.bias.clone())
        self.register_buffer("output_mask", reference.output_mask.clone())
        in_slices = self.irreps_in.slices()
        weight_start, bias_start = 0, 0
        by_output: dict[int, list[tuple[int, int, int, float]]] = {}   # i_out -> [(weight start, mul_in, i_in, alpha)]
        self.bias_of: dict[int, tuple[int, float]] = {}                   # i_out -> (bias start, alpha)
        for ins in reference.instructions:
            if ins.i_in == -1:
                self.bias_of[ins.i_out] = (bias_start, ins.path_weight)
                bias_start += ins.path_shape[0]
                continue
            mul_in = self.irreps_in[ins.i_in].mul
            by_output.setdefault(ins.i_out, []).append((weight_start, mul_in, ins.i_in, ins.path_weight))
            weight_start += mul_in * self.irreps_out[ins.i_out].mul
        columns, self.outputs = [], []   # per output irrep: (mul_out, dim, [(weight start, mul_in, alpha)], n_in)
        for i_out, mul_ir_out in enumerate(self.irreps_out):
            paths = by_output.get(i_out, [])
            for _, _, i_in, _ in paths:
                columns.append(torch.arange(in_slices[i_in].start, in_slices[i_in].stop))
            n_in = sum(mul_in for _, mul_in, _, _ in paths)
            self.outputs.append((mul_ir_out.mul, mul_ir_out.ir.dim, [(s, m, a) for s, m, _, a in paths], n_in))
        self.register_buffer("in_columns", torch.cat(columns) if columns else torch.zeros(0, dtype=torch.long), persistent=False)
        # every output's stacked (n_in, mul_out) weight matrix, times its paths' normalisation, is one gather
        # of the flat weight vector and one multiplication (not one slice per path: fewer, larger operations)
        index, alpha = [], []
        for mul_out, _, paths, _ in self.outputs:
            for start, mul_in, a in paths:
                index.append(torch.arange(start, start + mul_in * mul_out))
                alpha.append(torch.full((mul_in * mul_out,), float(a)))
        self.register_buffer("weight_index", torch.cat(index) if index else torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("weight_alpha", torch.cat(alpha) if alpha else torch.zeros(0), persistent=False)
        self.weight_split = [n_in * mul_out for mul_out, _, _, n_in in self.outputs]

    def take_input_in_order(self, order: torch.Tensor) -> None:
        """From now on expect inputs whose column ``order[j]`` holds column j of e3nn's layout of
        irreps_in (saves the caller a permutation of its output)."""
        self.in_columns = order.to(self.in_columns.device)[self.in_columns]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        gathered = x.index_select(1, self.in_columns)
        blocks = torch.split(gathered, [n_in * dim for _, dim, _, n_in in self.outputs], dim=1)
        stacked = torch.split(self.weight.index_select(0, self.weight_index) * self.weight_alpha.to(self.weight.dtype),
                              self.weight_split)
        outs = []
        for i_out, ((mul_out, dim, paths, n_in), xb, w) in enumerate(zip(self.outputs, blocks, stacked)):
            if not paths:
                out = x.new_zeros(n, mul_out * dim)
            else:
                # (N, n_in, dim) -> (N, dim, n_in) @ (n_in, mul_out) -> e3nn layout (N, mul_out, dim)
                out = (xb.view(n, n_in, dim).transpose(1, 2) @ w.view(n_in, mul_out)).transpose(1, 2).reshape(n, mul_out * dim)
            if i_out in self.bias_of:
                start, alpha = self.bias_of[i_out]
                out = out + alpha * self.bias[start:start + mul_out]
            outs.append(out)
        return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
