"""What an image tower takes as input: size, channels and normalisation, from the model's own configuration.

timm models carry ``pretrained_cfg`` (mean, std, input size; a random-init model carries its architecture's
default configuration), open_clip image towers ``image_mean`` / ``image_std`` / ``image_size``; the bundled tiny
CLIP records its Fashion-MNIST statistics in the same ``pretrained_cfg`` fields. The graph fixes size and channels
(its position table and patch convolution), so the spec never disagrees with what the tower can run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from spikemfm.errors import ConfigError
from spikemfm.ir import nodes as N


@dataclass(frozen=True)
class InputSpec:
    """Input of an image tower: ``size``×``size`` pixels, ``channels``, normalisation (x − mean) / std per channel.

    ``source`` says where mean / std came from (shown in summaries).
    """

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels or min(self.std) <= 0:
            raise ConfigError(f"InputSpec: mean {self.mean} / std {self.std} must give {self.channels} values, "
                              "std > 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        return cls(int(d["size"]), int(d["channels"]), tuple(d["mean"]), tuple(d["std"]), str(d["source"]))


def _per_channel(v: Any, channels: int) -> tuple[float, ...]:
    v = tuple(float(x) for x in (v if isinstance(v, (tuple, list)) else (v,)))
    return v * channels if len(v) == 1 else v


def input_spec(module: Any, graph: N.EncoderGraph) -> InputSpec:
    """The input spec of an image tower ``module`` whose extracted graph is ``graph``."""
    e = graph.embed
    if not isinstance(e, N.PatchEmbed):
        raise ConfigError(f"{graph.name}: an input spec is for image towers")
    size, channels = e.image_size, e.channels
    cfg = getattr(module, "pretrained_cfg", None)
    if isinstance(cfg, dict) and cfg.get("mean") is not None and cfg.get("std") is not None:
        mean, std, source = cfg["mean"], cfg["std"], f"timm pretrained_cfg ({cfg.get('architecture', 'model')})"
    elif getattr(module, "image_mean", None) is not None and getattr(module, "image_std", None) is not None:
        mean, std, source = module.image_mean, module.image_std, "open_clip image_mean/image_std"
    else:
        mean, std, source = (0.5,), (0.5,), "no normalisation in the model's config: mean 0.5, std 0.5 assumed"
    return InputSpec(size, channels, _per_channel(mean, channels), _per_channel(std, channels), source)
