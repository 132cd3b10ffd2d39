"""Coverage sweep: small random-init configs of every timm ViT-family name, open_clip architecture and Hugging
Face encoder class, each converted (fidelity guard, SNN ≡ QANN) or refused with one clear error — never a crash.

A case's status:
  ``converts``     extracted faithfully (guard passed), the SNN equals the QANN (graded spikes), T_exact measured
                   at 4 bits with binary spikes;
  ``refused``      :class:`~spikemfm.errors.UnsupportedModuleError` (including the fidelity guard's
                   :class:`~spikemfm.errors.FidelityError`) naming the module and what is supported;
  ``not built``    the family's own factory cannot build the small config here (no weights or config offline, or
                   the config does not take the size overrides) — nothing of spikemfm ran;
  ``crash``        any other exception from spikemfm: a defect (the sweep's test requires none).
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import torch

from spikemfm.errors import FidelityError, UnsupportedModuleError

SMALL_TIMM = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=5)
SMALL_HF = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=40)
HF_ENCODERS = ("Bert", "Roberta", "XLMRoberta", "Electra", "DistilBert", "Albert", "Camembert", "MPNet",
               "DebertaV2", "Ernie", "RoFormer", "Nystromformer", "MobileBert", "ModernBert")
T_EXACT_STEPS = 64


@dataclass(frozen=True)
class Case:
    """One model to sweep: ``family`` (timm / open_clip / hf), ``name``, and how to build (module, inputs)."""

    family: str
    name: str
    build: Callable[[], tuple[Any, Any]]


@dataclass(frozen=True)
class CoverageRow:
    """Outcome of one case (see the module docstring); numbers are None unless it converts."""

    family: str
    name: str
    status: str
    reason: str = ""
    fidelity_rel_l2: float | None = None
    qann8_rel_error: float | None = None
    snn_equals_qann: bool | None = None
    t_exact_4bit: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timm_case(name: str) -> Case:
    def build() -> tuple[Any, Any]:
        import timm

        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False, **SMALL_TIMM).eval(), torch.randn(4, 3, 32, 32)
    return Case("timm", name, build)


def timm_cases(patterns: tuple[str, ...] = ("vit_*", "deit*", "eva*", "beit*", "flexivit*")) -> list[Case]:
    """Every registered timm model name of the ViT family (timm.list_models of ``patterns``)."""
    from spikemfm.models._compat import import_timm

    return [_timm_case(n) for n in sorted(set(import_timm().list_models(list(patterns))))]


def _shrink(cfg: dict[str, Any], kind: str) -> dict[str, Any]:
    """A small copy of an open_clip tower config (fields the config has, others kept)."""
    small = dict(layers=2, width=32, heads=2, head_width=16, mlp_ratio=2.0)
    small.update(dict(image_size=32, patch_size=8) if kind == "vision" else dict(context_length=12, vocab_size=120))
    out = dict(cfg)
    for key, value in small.items():
        if key in out or key in ("layers", "width") or (key == "heads" and kind == "text") \
                or (key == "head_width" and kind == "vision"):
            out[key] = value
    if kind == "vision":
        out.pop("heads", None)  # open_clip derives vision heads from width / head_width
    return out


_HF_TYPES = (("xlm-roberta", "xlm-roberta"), ("roberta", "roberta"), ("bert", "bert"), ("mt5", "mt5"), ("t5", "t5"))
_SMALL_TEXT = dict(context_length=12, vocab_size=120, width=32, heads=2, layers=1)


@contextlib.contextmanager
def _small_timm_trunks(oc: Any) -> Iterator[None]:
    """open_clip builds a timm trunk by name at full size: for the sweep, the same name at :data:`SMALL_TIMM`'s
    depth / width (image size and classes stay open_clip's)."""
    tm = oc.timm_model.timm
    create = tm.create_model
    small = {k: v for k, v in SMALL_TIMM.items() if k in ("depth", "embed_dim", "num_heads", "patch_size")}
    vit = ("vit_", "deit", "eva", "beit", "flexivit")

    def small_create(name: str, *a: Any, **kw: Any) -> Any:
        return create(name, *a, **({**small, "img_size": 32, **kw} if name.startswith(vit) else kw))
    tm.create_model = small_create
    try:
        yield
    finally:
        tm.create_model = create


class _TextOnly(torch.nn.Module):
    """A text tower built alone (an HF text encoder from a small local config), as OpenClipTextTower takes it."""

    def __init__(self, text: torch.nn.Module) -> None:
        super().__init__()
        self.text = text

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text(ids)


def _hf_text(oc: Any, tcfg: dict[str, Any]) -> torch.nn.Module:
    import transformers

    hf_name = tcfg["hf_model_name"]
    model_type = next((t for key, t in _HF_TYPES if key in hf_name.lower()), None)
    if model_type is None:
        raise ValueError(f"no local config for the Hugging Face text model {hf_name!r}")
    kw = {k: v for k, v in SMALL_HF.items() if not model_type.endswith("t5")}
    if model_type.endswith("t5"):
        kw = dict(vocab_size=120, d_model=32, num_layers=2, num_heads=2, d_ff=64, d_kv=16)
    cfg = transformers.AutoConfig.for_model(model_type, **kw)
    proj = tcfg.get("hf_proj_type")
    out_dim = 16 if proj else 32  # without a projection open_clip needs output width = model width
    return oc.hf_model.HFTextEncoder(hf_name, out_dim, config=cfg, pooler_type=tcfg.get("hf_pooler_type"),
                                     proj_type=proj).eval()


def _open_clip_case(name: str, tower: str) -> Case:
    def build() -> tuple[Any, Any]:
        from spikemfm.ir import OpenClipTextTower
        from spikemfm.models._compat import import_open_clip

        oc = import_open_clip()
        cfg = copy.deepcopy(oc.get_model_config(name))
        vcfg, tcfg = cfg["vision_cfg"], cfg["text_cfg"]
        torch.manual_seed(0)
        if tower == "text" and tcfg.get("hf_model_name"):  # the hub config is not reachable: a small local one
            clip: Any = _TextOnly(_hf_text(oc, tcfg))
        else:
            kwargs = {"embed_dim": 16, "vision_cfg": _shrink(vcfg, "vision"),
                      "text_cfg": _SMALL_TEXT if tcfg.get("hf_model_name") else _shrink(tcfg, "text")}
            with _small_timm_trunks(oc):
                clip = oc.create_model(name, pretrained=None, **kwargs).eval()
        if tower == "image":
            return clip.visual, torch.randn(4, 3, 32, 32)
        text = getattr(clip, "text", None) or clip
        vocab = int(getattr(text, "vocab_size", 120) or 120)
        n = min(12, int(getattr(text, "context_length", 12) or 12))
        ids = torch.randint(3, vocab - 1, (4, n), generator=torch.Generator().manual_seed(1))
        ids[:, -1] = vocab - 1
        return OpenClipTextTower(clip), ids
    return Case("open_clip", f"{name} ({tower})", build)


def open_clip_cases() -> list[Case]:
    """Both towers of every open_clip architecture."""
    from spikemfm.models._compat import import_open_clip

    return [_open_clip_case(n, t) for n in import_open_clip().list_models() for t in ("image", "text")]


def _hf_case(prefix: str) -> Case:
    def build() -> tuple[Any, Any]:
        import transformers

        cfg_cls = getattr(transformers, f"{prefix}Config")
        model_cls = getattr(transformers, f"{prefix}Model")
        kw = dict(SMALL_HF)
        if prefix == "DistilBert":
            kw = dict(vocab_size=120, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=40)
        elif prefix in ("Electra", "Albert"):
            kw["embedding_size"] = 16
        elif prefix == "ModernBert":  # its special-token ids default to its own 50k vocabulary
            kw.update(pad_token_id=0, eos_token_id=1, bos_token_id=2, cls_token_id=2, sep_token_id=1)
        torch.manual_seed(0)
        model = model_cls(cfg_cls(**kw)).eval()
        ids = torch.randint(5, 119, (4, 12), generator=torch.Generator().manual_seed(2))
        mask = torch.ones_like(ids)
        mask[1, 8:] = 0
        return model, {"input_ids": ids, "attention_mask": mask}
    return Case("hf", f"{prefix}Model", build)


def hf_cases() -> list[Case]:
    """Small configs of the Hugging Face encoder classes in :data:`HF_ENCODERS`."""
    return [_hf_case(p) for p in HF_ENCODERS]


def all_cases() -> Iterator[Case]:
    yield from timm_cases()
    yield from open_clip_cases()
    yield from hf_cases()


def _convert(module: Any, x: Any) -> dict[str, Any]:
    """Converts one module; the figures of a ``converts`` row (raises what the conversion raises)."""
    from spikemfm.convert import ConvertConfig, QuantConfig, quantize
    from spikemfm.snn import convert
    from spikemfm.ir import as_inputs, extractor_for
    from spikemfm.snn import simulate

    q8 = quantize(module, QuantConfig(bits=8), [x])
    with torch.no_grad():
        ref = extractor_for(module).reference(module, as_inputs(q8.graph, x)).double()
    out8 = q8(x).double()
    graded = simulate(convert(q8, ConvertConfig(max_spikes_per_step=None)), x, 1 + 2 * len(q8.graph.blocks))
    q4 = quantize(module, QuantConfig(bits=4), [x])
    binary = simulate(convert(q4, ConvertConfig(max_spikes_per_step=1)), x, T_EXACT_STEPS)
    return {"fidelity_rel_l2": q8.fidelity.output_error if q8.fidelity is not None else None,
            "qann8_rel_error": float((out8 - ref).norm() / ref.norm().clamp_min(1e-12)),
            "snn_equals_qann": graded.t_exact(out8) is not None,
            "t_exact_4bit": binary.t_exact(q4(x))}


def run_case(case: Case) -> CoverageRow:
    """Builds and converts one case; never raises (a spikemfm exception other than a refusal is a ``crash``)."""
    t0 = time.perf_counter()
    try:
        module, x = case.build()
    except Exception as exc:  # the family's factory, not spikemfm: recorded as not built
        return CoverageRow(case.family, case.name, "not built", _reason(exc), seconds=time.perf_counter() - t0)
    try:
        figures = _convert(module, x)
    except FidelityError as exc:
        return CoverageRow(case.family, case.name, "refused", "fidelity guard: " + _reason(exc, False),
                           seconds=time.perf_counter() - t0)
    except UnsupportedModuleError as exc:
        return CoverageRow(case.family, case.name, "refused", _reason(exc, False), seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - the point of the sweep: anything else is a defect to report
        return CoverageRow(case.family, case.name, "crash", _reason(exc), seconds=time.perf_counter() - t0)
    return CoverageRow(case.family, case.name, "converts", **figures, seconds=round(time.perf_counter() - t0, 2))


def _reason(exc: BaseException, with_type: bool = True) -> str:
    text = " ".join(str(exc).split())
    text = text.split(". Supported towers:")[0]  # the list of supported towers is the same for every refusal
    return (f"{type(exc).__name__}: " if with_type else "") + text[:300]
