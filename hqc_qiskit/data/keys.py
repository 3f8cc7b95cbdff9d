"""Keys of the graph dictionaries passed through the model, with their shapes and units.

N = atoms in the batch, M = edges (directed neighbour pairs), B = structures in the batch.
"""

POSITIONS = "positions"      # (N, 3)   float  | Å, Cartesian
SPECIES = "species"          # (N,)     long   | index into the model's species list
BATCH = "batch"              # (N,)     long   | structure index of each atom
EDGE_INDEX = "edge_index"    # (2, M)   long   | [sender j, receiver i]; edge vector r_ij = r_j - r_i + shift
SHIFTS = "shifts"            # (M, 3)   float  | integer lattice shifts S (edge vector adds S @ cell)
CELL = "cell"                # (B, 3, 3) float | Å, rows are lattice vectors
N_STRUCTURES = "n_structures"  # int
ENERGY = "energy"            # (B,)     float  | eV, reference total energy
FORCES = "forces"            # (N, 3)   float  | eV/Å, reference forces
STRESS = "stress"            # (B, 3, 3) float | eV/Å^3, reference stress (ASE's sign), where labelled (else 0)
STRESS_MASK = "stress_mask"  # (B,)     bool   | which structures carry a stress label (with STRESS)
N_ATOMS = "n_atoms"          # (B,)     long   | atoms per structure
