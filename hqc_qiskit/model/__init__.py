"""Model: radial basis, interaction block, readouts (classical | quantum), the potential."""
