"""Shared pieces of the extractors: torch modules → :mod:`spikemfm.ir.nodes`, and the one error they raise."""
from __future__ import annotations

import torch
from torch import nn

from spikemfm.errors import UnsupportedModuleError
from spikemfm.ir import nodes as N
from spikemfm.ir.units.rmsnorm import RMSNorm

SUPPORTED = ("timm VisionTransformer/DeiT (distilled, registers, no_embed_class, map pooling, qk-norm, SwiGLU, RMSNorm)",
             "timm Eva (EVA-02, RoPE ViTs, DINOv3)", "open_clip VisionTransformer / TimmModel", "OpenClipTextTower", "transformers BertModel/RobertaModel/XLMRobertaModel/ElectraModel/"
             "DistilBertModel/AlbertModel", "spikemfm TextEncoder",
             "transformers LlamaForCausalLM/Qwen2ForCausalLM/GPT2LMHeadModel (causal LMs)")


def unsupported(path: str, module: object, what: str) -> UnsupportedModuleError:
    return UnsupportedModuleError(
        f"{path or '<root>'} ({type(module).__module__}.{type(module).__name__}): {what}. "
        f"Supported towers: {', '.join(SUPPORTED)}")


def tensor(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().float()


def linear(path: str, m: nn.Module, scale: torch.Tensor | None = None) -> N.Linear:
    if not isinstance(m, nn.Linear):
        raise unsupported(path, m, "expected nn.Linear")
    w, b = tensor(m.weight), tensor(m.bias) if m.bias is not None else None
    if scale is not None:  # fold LayerScale gamma into the output rows
        w, b = w * scale[:, None], (b * scale if b is not None else None)
    return N.Linear(path, w, b)


def layernorm(path: str, m: nn.Module) -> N.LayerNorm | RMSNorm:
    """A normalisation layer: an affine ``nn.LayerNorm``, or an RMSNorm (``nn.RMSNorm``, timm ``RmsNorm``)."""
    if type(m).__name__ in ("RMSNorm", "RmsNorm") and len(m.normalized_shape) == 1:
        weight = tensor(m.weight) if m.weight is not None else torch.ones(m.normalized_shape)
        eps = m.eps if m.eps is not None else torch.finfo(torch.float32).eps  # nn.RMSNorm's default for float32
        return RMSNorm(path, weight, float(eps))
    if not isinstance(m, nn.LayerNorm) or m.weight is None:
        raise unsupported(path, m, "expected an affine nn.LayerNorm or an RMSNorm")
    return N.LayerNorm(path, tensor(m.weight), tensor(m.bias), float(m.eps))


def identity(path: str, m: nn.Module | None, what: str) -> None:
    if m is not None and not isinstance(m, (nn.Identity, nn.Dropout)):
        raise unsupported(path, m, f"{what} must be Identity/Dropout for conversion")


def act_name(path: str, m: nn.Module) -> str:
    name = type(m).__name__
    if isinstance(m, nn.GELU):
        return "gelu_tanh" if m.approximate == "tanh" else "gelu"
    hf = {"GELUActivation": "gelu", "NewGELUActivation": "gelu_tanh", "GELUTanh": "gelu_tanh",
          "PytorchGELUTanh": "gelu_tanh", "QuickGELUActivation": "quick_gelu", "QuickGELU": "quick_gelu"}
    if name in hf:
        return hf[name]
    if isinstance(m, nn.ReLU):
        return "relu"
    if isinstance(m, nn.SiLU) or name in ("SiLUActivation", "SiLU", "Swish"):
        return "silu"
    if isinstance(m, nn.Sigmoid) or name == "Sigmoid":
        return "sigmoid"
    raise unsupported(path, m, f"activation {name} unsupported; supported: {N.ACTIVATIONS}")


def layerscale(path: str, m: nn.Module) -> torch.Tensor | None:
    if isinstance(m, nn.Identity):
        return None
    gamma = getattr(m, "gamma", None)
    if gamma is None:
        raise unsupported(path, m, "expected LayerScale (with .gamma) or Identity")
    return tensor(gamma)


def split_qkv(path: str, w: torch.Tensor, b: torch.Tensor | None) -> tuple[N.Linear, ...]:
    ws = tensor(w).chunk(3, dim=0)
    bs = tensor(b).chunk(3, dim=0) if b is not None else (None, None, None)
    return tuple(N.Linear(f"{path}[{n}]", wi, bi) for n, wi, bi in zip("qkv", ws, bs))


