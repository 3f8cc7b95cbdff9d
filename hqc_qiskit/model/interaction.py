"""One message-passing interaction layer of the paper's backbone (DESIGN section 1).

skip = species-indexed linear of h;  x = linear_up(h);
m_ij = [w0(r_ij) * scalars(x_j),  TP_uvu(x_j, Y(r_ij); w(r_ij))]   (radial MLP gives all weights)
a_i = sum_j m_ij / sqrt(avg_num_neighbors);  h' = linear_down(a_i) / sqrt(avg_num_neighbors)
h' = linear(TP_uvu(h', h0)) + skip,   h0 = layer-0 (species embedding) features.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import nn

from .conv_tp import GroupedUVUTensorProduct, SplitUVUTensorProduct, edge_sum
from .fused_linear import FusedLinear
from .scalar_tp import ScalarPartnerTensorProduct


def scalar_channels(irreps: o3.Irreps) -> torch.Tensor:
    """Indices (long) of the 0e channels of a feature vector with ``irreps`` (readouts consume them)."""
    idx = [torch.arange(sl.start, sl.stop) for (mul, ir), sl in zip(irreps, irreps.slices()) if ir == o3.Irrep("0e")]
    return torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long)


def uvu_instructions(irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, irreps_target: o3.Irreps):
    """'uvu' paths in1 x in2 -> every irrep of ``irreps_target`` allowed by selection rules.

    Returns (irreps_mid, instructions) with irreps_mid sorted as e3nn expects.
    """
    targets = {ir for _, ir in irreps_target}
    irreps_mid, instructions = [], []
    for i, (mul, ir_in) in enumerate(irreps_in1):
        for j, (_, ir_edge) in enumerate(irreps_in2):
            for ir_out in ir_in * ir_edge:
                if ir_out in targets:
                    k = len(irreps_mid)
                    irreps_mid.append((mul, ir_out))
                    instructions.append((i, j, k, "uvu", True))
    irreps_mid = o3.Irreps(irreps_mid)
    irreps_sorted, perm, _ = irreps_mid.sort()
    instructions = [(i1, i2, perm[k], mode, w) for i1, i2, k, mode, w in instructions]
    return irreps_sorted, instructions


class InteractionBlock(nn.Module):
    """Input h: (N, irreps_in); returns (N, irreps_hidden). Edge inputs: Y (M, sh), radial (M, n_basis)."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_hidden: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_h0: o3.Irreps,
        n_species: int,
        n_radial: int,
        radial_mlp: list[int],
        avg_num_neighbors: float,
        tensor_product: str = "grouped",
        scalar_output_only: bool = False,
    ):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_hidden)
        self.norm = 1.0 / math.sqrt(avg_num_neighbors)
        species_irreps = o3.Irreps(f"{n_species}x0e")
        # Every e3nn module here is wrapped in an implementation of the same map that is faster on CPU
        # (model/conv_tp.py, fused_linear.py, scalar_tp.py; same parameters and state-dict names, tested
        # equal to e3nn in tests/test_physics.py). tensor_product 'e3nn' keeps e3nn's own modules.
        e3nn_only = tensor_product == "e3nn"
        linear = (lambda m: m) if e3nn_only else FusedLinear
        scalar_tp = (lambda m: m) if e3nn_only else ScalarPartnerTensorProduct
        self.skip = scalar_tp(o3.FullyConnectedTensorProduct(self.irreps_in, species_irreps, self.irreps_out))
        self.linear_up = linear(o3.Linear(self.irreps_in, self.irreps_in))
        self.register_buffer("scalar_idx", scalar_channels(self.irreps_in), persistent=False)
        self.n_scalars = len(self.scalar_idx)
        irreps_mid, instructions = uvu_instructions(self.irreps_in, irreps_sh, self.irreps_out)
        conv_tp = o3.TensorProduct(
            self.irreps_in, irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
        )
        edge_tp = {"grouped": GroupedUVUTensorProduct, "split": SplitUVUTensorProduct}.get(tensor_product)
        self.conv_tp = edge_tp(conv_tp) if edge_tp else conv_tp
        # radial MLP without biases: zero radial basis (at the cutoff) gives zero messages
        self.radial = FullyConnectedNet(
            [n_radial, *radial_mlp, self.conv_tp.weight_numel + self.n_scalars], torch.nn.functional.silu
        )
        self.irreps_msg = o3.Irreps(f"{self.n_scalars}x0e") + irreps_mid if self.n_scalars else irreps_mid
        self.linear_down = linear(o3.Linear(self.irreps_msg, self.irreps_out))
        h0_irreps_mid, h0_instructions = uvu_instructions(self.irreps_out, o3.Irreps(irreps_h0), self.irreps_out)
        self.h0_tp = scalar_tp(o3.TensorProduct(self.irreps_out, irreps_h0, h0_irreps_mid, h0_instructions, internal_weights=True))
        self.linear = linear(o3.Linear(h0_irreps_mid, self.irreps_out))
        if isinstance(self.conv_tp, GroupedUVUTensorProduct):
            # the message goes to linear_down in the grouped product's own column order (one gather less)
            scalars = torch.arange(self.n_scalars)
            self.linear_down.take_input_in_order(torch.cat([scalars, self.n_scalars + self.conv_tp.out_columns]))
        #: compute only what the 0e outputs need (see _plan_scalar_output); set for the last layer
        self.scalar_output_only = False
        if scalar_output_only and isinstance(self.conv_tp, GroupedUVUTensorProduct):
            self._plan_scalar_output(conv_tp, irreps_sh)
            self.scalar_output_only = True

    def _plan_scalar_output(self, conv_tp: o3.TensorProduct, irreps_sh: o3.Irreps) -> None:
        """Plan the cheap forward of a layer whose non-scalar outputs nobody reads (the last layer: the
        readouts take the 0e channels only).

        Every module after the edge sum is equivariant, so the 0e outputs depend only on the 0e message
        channels. Only the edge tensor-product paths that end in 0e (3 of the paper's 36) and the radial
        MLP columns that weigh them are computed; the other message channels are left at zero, which
        changes only output channels that are never read. E and F are the same as the full layer's
        (tested against e3nn's modules, with every parameter gradient). Why: the edge work of this
        layer is about a fifth of the model's, and most of it feeds unread channels.
        """
        mid_0e, ins_0e = uvu_instructions(self.irreps_in, irreps_sh, o3.Irreps("0e"))
        reference_0e = o3.TensorProduct(self.irreps_in, irreps_sh, mid_0e, ins_0e, shared_weights=False, internal_weights=False)
        self.conv_tp_0e = GroupedUVUTensorProduct(reference_0e)
        full_ins = list(conv_tp.instructions)
        weight_start = [0]
        for ins in full_ins:
            weight_start.append(weight_start[-1] + self.irreps_in[ins.i_in1].mul)
        radial_columns = list(range(self.n_scalars))
        gather = torch.full((conv_tp.irreps_out.dim,), self.conv_tp_0e.irreps_out.dim, dtype=torch.long)
        full_slices, slices_0e = conv_tp.irreps_out.slices(), reference_0e.irreps_out.slices()
        for ins in reference_0e.instructions:
            (k, full), = [(k, f) for k, f in enumerate(full_ins) if (f.i_in1, f.i_in2) == (ins.i_in1, ins.i_in2)
                          and conv_tp.irreps_out[f.i_out].ir == o3.Irrep("0e")]
            if abs(full.path_weight - ins.path_weight) > 1e-12 * abs(full.path_weight):
                raise ValueError("unexpected path normalisation in the scalar-output plan")
            radial_columns += [self.n_scalars + weight_start[k] + t for t in range(self.irreps_in[ins.i_in1].mul)]
            for j_0e, j_full in zip(range(slices_0e[ins.i_out].start, slices_0e[ins.i_out].stop),
                                    range(full_slices[full.i_out].start, full_slices[full.i_out].stop)):
                # own order of each grouped product: e3nn column j sits at out_columns[j]
                gather[self.conv_tp.out_columns[j_full]] = self.conv_tp_0e.out_columns[j_0e]
        self.register_buffer("radial_columns_0e", torch.tensor(radial_columns, dtype=torch.long), persistent=False)
        self.register_buffer("message_gather_0e", gather, persistent=False)

    def _radial_weights(self, radial: torch.Tensor) -> torch.Tensor:
        """The radial MLP's output columns for the 0e paths only (its last layer has no activation)."""
        layers = list(self.radial)
        for layer in layers[:-1]:
            radial = layer(radial)
        last = layers[-1]
        w = last.weight.index_select(1, self.radial_columns_0e) / (last.h_in * last.var_in / last.var_out) ** 0.5
        return radial @ w

    def forward(self, h, h0, species_onehot, sh, radial, senders, receivers):
        skip = self.skip(h, species_onehot)                      # (N, hidden)
        x = self.linear_up(h)                                    # (N, in)
        weights = self._radial_weights(radial) if self.scalar_output_only else self.radial(radial)  # (M, n_scalars + n_tp_weights)
        w_scalar, w_tp = torch.split(weights, [self.n_scalars, weights.shape[1] - self.n_scalars], dim=1)
        if isinstance(self.conv_tp, GroupedUVUTensorProduct):
            if self.scalar_output_only:   # the 0e paths only, the other message channels left at zero
                agg = self.conv_tp_0e.aggregate_unordered(x, sh, w_tp, senders, receivers)   # (N, 0e paths)
                agg = torch.cat([agg, agg.new_zeros(agg.shape[0], 1)], dim=1).index_select(1, self.message_gather_0e)
            else:
                agg = self.conv_tp.aggregate_unordered(x, sh, w_tp, senders, receivers)   # (N, mid), own order
            if self.n_scalars:
                scalars = x.index_select(1, self.scalar_idx).index_select(0, senders) * w_scalar   # (M, n_scalars)
                agg = torch.cat([edge_sum(h, scalars, receivers), agg], dim=1)
            return self._update(agg, h0, skip)
        x_j = x[senders]                                         # (M, in)
        if isinstance(self.conv_tp, SplitUVUTensorProduct):
            blocks = self.conv_tp.blocks(x_j, sh, w_tp)          # [(M, mul*dim)] per output irrep
        else:
            blocks = [self.conv_tp(x_j, sh, w_tp)]               # (M, mid)
        if self.n_scalars:
            blocks = [x_j[:, self.scalar_idx] * w_scalar] + blocks
        # sum over edges block by block, then concatenate the (N, .) sums: concatenating (M, .) edge
        # blocks first costs a full-size zero fill per block in the force-training double backward
        agg = torch.cat([edge_sum(h, b, receivers) for b in blocks], dim=1)
        return self._update(agg, h0, skip)

    def _update(self, agg, h0, skip):
        """agg: (N, msg) sum of messages over each atom's edges -> new features (N, hidden)."""
        agg = agg * self.norm                                    # (N, msg)
        out = self.linear_down(agg) * self.norm                  # (N, hidden)
        out = self.linear(self.h0_tp(out, h0))                   # (N, hidden)
        return out + skip
