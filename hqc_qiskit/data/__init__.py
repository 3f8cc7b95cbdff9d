"""Data: CP2K import, labelled-file loading with validation, splits, neighbour lists, batching."""
