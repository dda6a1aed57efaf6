"""evals: few-shot, in-context evaluation of interleaved image-text models (IDEFICS, Flamingo protocol)."""

__version__ = "0.1.0"
