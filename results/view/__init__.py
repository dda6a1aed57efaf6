"""The viewer: one self-contained HTML report of cells, sample by sample, as the model saw them (`evals view`)."""
