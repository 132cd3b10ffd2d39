"""The bundled tiny CLIP's pipeline (model-specific: kept out of the generic path) as library functions:
calibrate → quantize → convert → simulate → evaluate.

Both towers run as SNNs: the class embeddings come from the spiking MiniLM text tower and the image
embeddings from the spiking ViT, each read out at every time step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikemfm.convert import ConvertConfig, QuantConfig, QuantizedModel, quantize
from spikemfm.snn import SpikingModel, convert
from spikemfm.data import ImageSplit, load_fashion_mnist, load_sentences
from spikemfm.app.zero_shot import zero_shot_accuracy
from spikemfm.models.tiny_clip import PROMPT_CLASSNAMES, TEMPLATES, TinyCLIP
from spikemfm.snn import simulate


def image_batches(split: ImageSplit, batch_size: int) -> Iterator[torch.Tensor]:
    """Normalised image batches of a split, in order."""
    x, _ = split.tensors()
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]


def calibration_images(n: int = 512, batch_size: int = 128, seed: int = 0) -> list[torch.Tensor]:
    """Real calibration batches from the Fashion-MNIST *training* split (never the test split)."""
    return list(image_batches(load_fashion_mnist("train").subset(n, seed), batch_size))


def prompts() -> list[str]:
    """All class prompts, class-major: prompts()[c * len(TEMPLATES) + t]."""
    return [t.format(c) for c in PROMPT_CLASSNAMES for t in TEMPLATES]


def text_calibration(model: TinyCLIP, n_sentences: int = 64) -> list[dict]:
    """Calibration batches for the text tower: the prompts plus real sentences."""
    tok = model.text.tokenize
    return [tok(prompts()), tok(load_sentences(n_sentences, seed=1))]


def classifier_from_embeddings(emb: torch.Tensor) -> torch.Tensor:
    """(…, C·templates, D) prompt embeddings → (…, C, D) normalised class embeddings (CLIP ensembling)."""
    per = F.normalize(emb, dim=-1).unflatten(-2, (len(PROMPT_CLASSNAMES), len(TEMPLATES))).mean(-2)
    return F.normalize(per, dim=-1)


@dataclass
class SpikingCLIP:
    """The two converted towers of the tiny CLIP."""

    image: SpikingModel
    text: SpikingModel
    image_qann: QuantizedModel
    text_qann: QuantizedModel


def convert_tiny_clip(model: TinyCLIP, quant: QuantConfig, conv: ConvertConfig,
                      calib_images: list[torch.Tensor]) -> SpikingCLIP:
    """Quantizes and converts both towers of the tiny CLIP."""
    image_qann = quantize(model.visual, quant, calib_images)
    text_qann = quantize(model.text, quant, text_calibration(model))
    return SpikingCLIP(convert(image_qann, conv), convert(text_qann, conv), image_qann, text_qann)


def qann_classifier(s: SpikingCLIP, model: TinyCLIP) -> torch.Tensor:
    """Class embeddings (C, D) from the QANN text tower."""
    return classifier_from_embeddings(s.text_qann(model.text.tokenize(prompts())))


def snn_classifier(s: SpikingCLIP, model: TinyCLIP, timesteps: int) -> torch.Tensor:
    """Class embeddings per step (T, C, D) from the spiking text tower."""
    return classifier_from_embeddings(simulate(s.text, model.text.tokenize(prompts()), timesteps).outputs)


@dataclass
class CurveResult:
    """Zero-shot accuracy per step and agreement with the QANN's predictions per step."""

    accuracy: torch.Tensor
    agreement: torch.Tensor
    spikes_per_image: float
    neurons_per_image: int


@torch.no_grad()
def snn_zero_shot_curve(s: SpikingCLIP, classifier_t: torch.Tensor, qann_classifier_: torch.Tensor,
                        split: ImageSplit, timesteps: int, batch_size: int = 100,
                        progress: bool = True, desc: str = "SNN zero-shot") -> CurveResult:
    """Accuracy at every T ≤ ``timesteps`` of the spiking image tower against per-step class embeddings."""
    _, y = split.tensors()
    correct = torch.zeros(timesteps, dtype=torch.float64)
    agree = torch.zeros(timesteps, dtype=torch.float64)
    spikes, start = 0.0, 0
    neurons = 0
    for x in tqdm(image_batches(split, batch_size), total=-(-len(y) // batch_size), desc=desc,
                  disable=not progress, unit="batch"):
        res = simulate(s.image, x, timesteps)
        emb = F.normalize(res.outputs, dim=-1)
        pred = torch.einsum("tbd,tcd->tbc", emb, classifier_t.to(emb.dtype)).argmax(-1)
        q_pred = (F.normalize(s.image_qann(x), dim=-1) @ qann_classifier_.to(emb.dtype).T).argmax(-1)
        yb = y[start:start + len(x)]
        correct += (pred == yb).sum(1)
        agree += (pred == q_pred).sum(1)
        spikes += res.total_spikes()
        neurons = res.total_neurons()
        start += len(x)
    return CurveResult(correct / len(y), agree / len(y), spikes / len(y), neurons)


def qann_zero_shot(s: SpikingCLIP, classifier: torch.Tensor, split: ImageSplit, batch_size: int = 250) -> float:
    """Zero-shot accuracy of the QANN image tower with the given class embeddings."""
    clf = classifier.to(torch.float64)
    return zero_shot_accuracy(lambda x: F.normalize(s.image_qann(x), dim=-1) @ clf.T, split, batch_size,
                              progress=False)
