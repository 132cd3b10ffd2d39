"""Types of a converted model (quantizers, integer Linears, QParams) and exact-integer product rules."""
from spikemfm.quant.params import ActQuant, QLinear, QParams, signed_range

__all__ = ["ActQuant", "QLinear", "QParams", "signed_range"]
