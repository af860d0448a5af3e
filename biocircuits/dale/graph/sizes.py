"""The sample input the graph is run on (batch 1): [`biocircuits.core.samples`][biocircuits.core.samples] (shared with
the feedback conversion, which runs the model once to see which weights the error is multiplied by)."""

from biocircuits.core.samples import GUESSED_SIZES, sample_input

__all__ = ["GUESSED_SIZES", "sample_input"]
