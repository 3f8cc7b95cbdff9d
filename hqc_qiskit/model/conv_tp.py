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


def _take_uvu_reference(module: nn.Module, reference: o3.TensorProduct) -> None:
    """Check that ``reference`` is a product these modules implement; copy its irreps and sizes."""
    name = type(module).__name__
    module.irreps_in1, module.irreps_in2, module.irreps_out = reference.irreps_in1, reference.irreps_in2, reference.irreps_out
    if any(mul != 1 for mul, _ in module.irreps_in2):
        raise ValueError(f"{name} needs multiplicity 1 in the second input (spherical harmonics)")
    if any(ins.connection_mode != "uvu" or not ins.has_weight for ins in reference.instructions):
        raise ValueError(f"{name} implements weighted 'uvu' paths only")
    module.weight_numel = reference.weight_numel
    module.split1 = [mul_ir.dim for mul_ir in module.irreps_in1]


def edge_sum(like: torch.Tensor, values: torch.Tensor, receivers: torch.Tensor) -> torch.Tensor:
    """Sum of per-edge ``values`` (M, c) onto the receiving atoms: (N, c) with N = ``like.shape[0]``, in
    ``like``'s dtype. Under torch.autocast the edge terms may come out of a matmul in half precision; they
    are summed in the node features' precision (index_add needs one dtype; a no-op cast otherwise)."""
    return like.new_zeros(like.shape[0], values.shape[1]).index_add(0, receivers, values.to(like.dtype))


class SplitUVUTensorProduct(nn.Module):
    """x1 (M, irreps_in1) x x2 (M, irreps_in2; every multiplicity 1) with weights (M, weight_numel) -> (M, irreps_out).

    ``reference`` is the e3nn TensorProduct (uvu paths, shared_weights=False) whose operation this
    computes; only its instruction list and constants are used."""

    def __init__(self, reference: o3.TensorProduct):
        super().__init__()
        _take_uvu_reference(self, reference)
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


class GroupedUVUTensorProduct(nn.Module):
    """The same 'uvu' edge tensor product, fused with the sum over edges, one batched product per input block.

    For an input block with multiplicity u and dimension d1, all its paths share one right-hand side:
    y = Y @ C (M, d1, K), where C stacks the paths' Wigner 3j symbols (times their path weights) along
    the output axis (K = sum of the paths' output dimensions). Then one ``bmm`` (M, u, d1) x (M, d1, K),
    one multiplication by the per-edge weights (repeated over each path's output dimension) and one
    ``index_add`` onto the receiving atoms. The per-path output blocks are cut out of the (N, u, K) sums,
    at the atom level where it costs little. With the paper's irreps this is 6 products per layer
    instead of 36 products and 36 contractions (the split version), which matters most for inference,
    where the per-operation overhead is a large part of the time.
    """

    def __init__(self, reference: o3.TensorProduct):
        super().__init__()
        _take_uvu_reference(self, reference)
        sh_starts = [sl.start for sl in self.irreps_in2.slices()]
        weight_start, by_input = 0, {}
        for ins in reference.instructions:
            by_input.setdefault(ins.i_in1, []).append((ins, weight_start))
            weight_start += self.irreps_in1[ins.i_in1].mul
        self.groups = []          # (i_in1, u, d1, K, n_paths)
        out_source: list[tuple[int, int, int] | None] = [None] * len(self.irreps_out)   # (group, k0, dim)
        for g, (i1, paths) in enumerate(sorted(by_input.items())):
            mul_ir1 = self.irreps_in1[i1]
            u, d1 = mul_ir1.mul, mul_ir1.ir.dim
            k_total = sum(self.irreps_out[ins.i_out].ir.dim for ins, _ in paths)
            stacked = torch.zeros(self.irreps_in2.dim, d1, k_total)
            repeat, k0 = [], 0
            for p, (ins, start) in enumerate(paths):
                if start != sum(gu * gp for _, gu, _, _, gp in self.groups) + p * u:
                    raise ValueError("GroupedUVUTensorProduct needs the path weights ordered by input block")
                ir2, ir_out = self.irreps_in2[ins.i_in2].ir, self.irreps_out[ins.i_out].ir
                if out_source[ins.i_out] is not None:
                    raise ValueError("GroupedUVUTensorProduct needs one path per output irrep")
                w3j = o3.wigner_3j(mul_ir1.ir.l, ir2.l, ir_out.l) * ins.path_weight      # (d1, d2, d_out)
                j0 = sh_starts[ins.i_in2]
                stacked[j0:j0 + ir2.dim, :, k0:k0 + ir_out.dim] = w3j.permute(1, 0, 2)
                repeat += [p] * ir_out.dim
                out_source[ins.i_out] = (g, k0, ir_out.dim)
                k0 += ir_out.dim
            self.register_buffer(f"cg_{g}", stacked.reshape(self.irreps_in2.dim, d1 * k_total), persistent=False)
            self.register_buffer(f"repeat_{g}", torch.tensor(repeat, dtype=torch.long), persistent=False)
            self.groups.append((i1, u, d1, k_total, len(paths)))
        if any(src is None for src in out_source):
            raise ValueError("GroupedUVUTensorProduct needs a path for every output irrep")
        self.weight_split = [u * n_paths for _, u, _, _, n_paths in self.groups]
        # the per-atom sums are (N, K, u) per group; their flat concatenation -> e3nn's layout of irreps_out
        # ((multiplicity, component) within each block) is one column permutation
        group_start = [0]
        for _, u, _, k_total, _ in self.groups:
            group_start.append(group_start[-1] + k_total * u)
        columns = []
        for g, k0, dim in out_source:
            u = self.groups[g][1]
            columns += [group_start[g] + (k0 + c) * u + v for v in range(u) for c in range(dim)]
        self.register_buffer("out_columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        self._register_load_state_dict_pre_hook(SplitUVUTensorProduct._drop_e3nn_constants)

    def aggregate(self, x: torch.Tensor, x2: torch.Tensor, weights: torch.Tensor,
                  senders: torch.Tensor, receivers: torch.Tensor) -> torch.Tensor:
        """x (N, irreps_in1) node features, x2 (M, irreps_in2) edge attributes, weights (M, weight_numel);
        returns sum over edges e -> receiver of TP(x[sender_e], x2_e; weights_e): (N, irreps_out)."""
        return self.aggregate_unordered(x, x2, weights, senders, receivers).index_select(1, self.out_columns)

    def aggregate_unordered(self, x: torch.Tensor, x2: torch.Tensor, weights: torch.Tensor,
                            senders: torch.Tensor, receivers: torch.Tensor) -> torch.Tensor:
        """The same sums with their columns in this module's own order: column ``out_columns[j]`` is
        column j of e3nn's layout. A following ``FusedLinear`` can take this order directly."""
        m = x2.shape[0]
        # index_select, not x[senders]: its backward is index_add, much faster than index_put
        xs = torch.split(x.index_select(0, senders), self.split1, dim=1)
        ws = torch.split(weights, self.weight_split, dim=1)   # split, not narrow: one backward for all
        sums = []
        for g, (i1, u, d1, k_total, n_paths) in enumerate(self.groups):
            y = (x2 @ getattr(self, f"cg_{g}")).view(m, d1, k_total)              # (M, d1, K)
            w = ws[g].view(m, n_paths, u)                                          # (M, paths, u)
            repeat = getattr(self, f"repeat_{g}")
            if d1 == 1:   # scalar inputs: an outer product; weigh the (M, paths, u) inputs before expanding
                r = y.view(m, k_total, 1) * (w * xs[i1].view(m, 1, u)).index_select(1, repeat)   # (M, K, u)
            else:
                x1 = xs[i1].reshape(m, u, d1)                                       # (M, u, d1)
                r = torch.bmm(y.transpose(1, 2), x1.transpose(1, 2)) * w.index_select(1, repeat)  # (M, K, u)
            sums.append(edge_sum(x, r.reshape(m, k_total * u), receivers))   # (N, K*u)
        return torch.cat(sums, dim=1)                                              # (N, irreps_out dim)
