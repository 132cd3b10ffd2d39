"""Frozen, validated configuration of quantization and conversion."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch

from spikemfm.core.checks import check_field_types
from spikemfm.errors import ConfigError
from spikemfm.ir.nodes import Point, Role
from spikemfm.quant.neurons import NEURON_MODELS, NeuronModel

MIN_BITS, MAX_BITS = 2, 16
CLIP_METHODS = ("max", "mse", "percentile")
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}


def check_precision(owner: str, precision: str) -> None:
    """Raises ConfigError unless ``precision`` names a supported float path precision."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{owner}.precision={precision!r}: choose one of {tuple(PRECISIONS)}")


def _check_bits(field: str, bits: int | None) -> None:
    if bits is not None and not (isinstance(bits, int) and MIN_BITS <= bits <= MAX_BITS):
        raise ConfigError(f"QuantConfig.{field}={bits!r}: bits must be an integer in [{MIN_BITS}, {MAX_BITS}]")


@dataclass(frozen=True)
class QuantConfig:
    """Uniform quantization of a tower into a QANN.

    Attributes:
        bits: bits of every spiking activation: signed levels −(2^(b−1)−1) … 2^(b−1)−1.
        weight_bits: bits of the per-output-channel symmetric weights (default: ``bits``).
        attn_bits: bits of the attention probabilities, unsigned levels 0 … 2^b−1 (default: ``bits``).
        clip: how activation ranges are calibrated: ``max``, ``mse`` (clip minimising the quantization
            MSE on the calibration data) or ``percentile``.
        percentile: for ``clip="percentile"``, the |x| percentile used as the range.
        act_overrides: (glob over quantization point names, bits) pairs, first match wins, e.g.
            ``(("blocks.0.*", 8),)``; the hook for per-layer bit widths.
        weight_overrides: (glob over Linear module paths, bits) pairs for weights.
        channel_overrides: (Linear path, output channel indices, bits) triples: bits of a channel group
            (outlier channels), applied over the layer's bits.
        max_calib_batches: calibration batches consumed at most.
        precision: dtype of the float path (currents, LayerNorm, softmax, scales) of the QANN and of the
            SNN converted from it: ``float64`` (reference) or ``float32`` (about 2× faster). Integer
            accumulations are exact either way, and the SNN equals the QANN of the same precision.
        smooth: SmoothQuant migration strength α in [0, 1] (None: off): channel scales folded into the weights
            before calibration (:mod:`spikemfm.convert.smooth`); α = 1 gives every neuron its channel's own step.
            For LLMs, whose activations carry outlier channels.
    """

    bits: int = 8
    weight_bits: int | None = None
    attn_bits: int | None = None
    clip: str = "mse"
    percentile: float = 99.99
    act_overrides: tuple[tuple[str, int], ...] = ()
    weight_overrides: tuple[tuple[str, int], ...] = ()
    channel_overrides: tuple[tuple[str, tuple[int, ...], int], ...] = ()
    max_calib_batches: int = 16
    precision: str = "float64"
    smooth: float | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        _check_bits("bits", self.bits)
        if self.smooth is not None and not 0.0 <= self.smooth <= 1.0:
            raise ConfigError(f"QuantConfig.smooth={self.smooth!r}: the migration strength lies in [0, 1]")
        check_precision("QuantConfig", self.precision)
        _check_bits("weight_bits", self.weight_bits)
        _check_bits("attn_bits", self.attn_bits)
        for field in ("act_overrides", "weight_overrides"):
            for pattern, bits in getattr(self, field):
                _check_bits(f"{field}[{pattern!r}]", bits)
        for path, channels, bits in self.channel_overrides:
            _check_bits(f"channel_overrides[{path!r}]", bits)
            if not channels or min(channels) < 0:
                raise ConfigError(f"QuantConfig.channel_overrides[{path!r}]: give non-negative channel indices")
        if self.clip not in CLIP_METHODS:
            raise ConfigError(f"QuantConfig.clip={self.clip!r}: choose one of {CLIP_METHODS}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"QuantConfig.percentile={self.percentile}: must lie in (50, 100]")
        if self.max_calib_batches < 1:
            raise ConfigError("QuantConfig.max_calib_batches must be >= 1")

    def act_bits(self, point: Point) -> int:
        """Bits of the activation at quantization point ``point`` (its role decides ``attn_bits``)."""
        for pattern, bits in self.act_overrides:
            if fnmatch.fnmatchcase(point, pattern):
                return bits
        if getattr(point, "role", None) is Role.PROBS and self.attn_bits is not None:
            return self.attn_bits
        return self.bits

    def weight_bits_for(self, path: str) -> int:
        """Bits of the weights of the Linear at module path ``path``."""
        for pattern, bits in self.weight_overrides:
            if fnmatch.fnmatchcase(path, pattern):
                return bits
        return self.weight_bits if self.weight_bits is not None else self.bits

    def weight_row_bits(self, path: str, n_out: int) -> int | torch.Tensor:
        """Bits of the Linear at ``path``: an int, or (n_out,) per-row bits when channel groups differ."""
        base = self.weight_bits_for(path)
        groups = [(ch, b) for p, ch, b in self.channel_overrides if p == path]
        if not groups:
            return base
        bits = torch.full((n_out,), base, dtype=torch.int64)
        for channels, b in groups:
            if max(channels) >= n_out:
                raise ConfigError(f"QuantConfig.channel_overrides[{path!r}]: channel {max(channels)} >= {n_out} rows")
            bits[list(channels)] = b
        return bits

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype of :attr:`precision`."""
        return PRECISIONS[self.precision]


@dataclass(frozen=True)
class ConvertConfig:
    """QANN → SNN conversion.

    Attributes:
        max_spikes_per_step: most unit spikes a neuron may emit per time step (of one sign).
            1 = binary signed spikes (ST-BIF-style IF neuron); k > 1 = multi-spike burst neurons;
            ``None`` = unbounded (graded spikes carrying an integer payload, as Loihi 2 allows).
        neuron: the neuron law, a name in :data:`spikemfm.quant.neurons.NEURON_MODELS`: ``signed_if`` (exact:
            the SNN accumulates to the QANN) or ``unsigned_if`` (the naive ReLU→IF baseline).
    """

    max_spikes_per_step: int | None = 1
    neuron: str = "signed_if"

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.max_spikes_per_step is not None and (
                not isinstance(self.max_spikes_per_step, int) or self.max_spikes_per_step < 1):
            raise ConfigError(f"ConvertConfig.max_spikes_per_step={self.max_spikes_per_step!r}: "
                              "must be a positive integer or None (unbounded graded spikes)")
        if not isinstance(self.neuron, str) or self.neuron not in NEURON_MODELS:
            raise ConfigError(f"ConvertConfig.neuron={self.neuron!r}: choose one of {sorted(NEURON_MODELS)}")

    @property
    def neuron_model(self) -> NeuronModel:
        """The :class:`~spikemfm.quant.neurons.NeuronModel` named by :attr:`neuron`."""
        return NEURON_MODELS[self.neuron]


def parse_max_spikes(text: str) -> int | None:
    """Reads a spikes-per-step bound from text: a positive integer, or ``graded`` for no bound."""
    if text == "graded":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"max spikes per step {text!r}: give a positive integer or 'graded'") from None
    return ConvertConfig(max_spikes_per_step=value).max_spikes_per_step
