"""``spikemfm caption``: descriptions of images by the tiny-CLIP tower → projector → causal LM, on the float,
quantized or spiking path (:mod:`spikemfm.lm.caption`). The projector comes from a file, or is trained here —
on Fashion-MNIST (captions: the class names) or on the user's own folder of images with a ``captions.tsv``
(``file<TAB>caption`` lines; every 8th image held out as validation, on which the kept projector is chosen)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from spikemfm.errors import ConfigError, DataError

PATHS = ("fp32", "qann", "snn")


@dataclass(frozen=True)
class CaptionConfig:
    """The LM, path, number of visual tokens, the tower's input resolution (a multiple of its 4-pixel patch) and
    the projector's training budget."""

    model: str = "smollm2-135m"
    path: str = "snn"
    k: int = 4
    steps: int = 120
    train_images: int = 4000
    bits: int = 8
    max_new_tokens: int = 6
    resolution: int = 28

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ConfigError(f"--path {self.path!r}: choose one of {PATHS}")
        if isinstance(self.resolution, bool) or self.resolution < 4 or self.resolution % 4:
            raise ConfigError(f"--resolution={self.resolution}: give a multiple of the tower's 4-pixel patch")
        for n in ("k", "steps", "train_images", "bits", "max_new_tokens"):
            if isinstance(getattr(self, n), bool) or getattr(self, n) < 1:
                raise ConfigError(f"--{n.replace('_', '-')}={getattr(self, n)}: must be >= 1")


def save_projector(proj: Any, path: str | Path, resolution: int = 28) -> None:
    torch.save({"kind": "spikemfm-projector", "in_dim": proj.proj.in_features, "width": proj.width, "k": proj.k,
                "rms": proj.rms, "resolution": resolution, "state": proj.state_dict()}, path)


def load_projector(path: str | Path) -> Any:
    """A projector saved by :func:`save_projector` (its tower resolution in ``resolution``); one clear error for
    anything else."""
    from spikemfm.lm.caption import Projector

    import pickle

    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        proj = Projector(d["in_dim"], d["width"], d["k"], d["rms"])
        proj.load_state_dict(d["state"])
        proj.resolution = int(d.get("resolution", 28))
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(f"--projector {path}: not a projector saved by spikemfm caption --save-projector ({exc})")
    return proj.eval()


def folder_pairs(folder: Path) -> tuple[list[Path], list[str]]:
    """(image files, captions) from ``folder/captions.tsv``."""
    table = Path(folder) / "captions.tsv"
    if not table.is_file():
        raise DataError(f"--train-folder {folder}: needs a captions.tsv of 'file<TAB>caption' lines")
    files, caps = [], []
    with table.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if len(row) != 2 or not row[1].strip() or not (Path(folder) / row[0]).is_file():
                raise DataError(f"{table}, line {i}: want 'file<TAB>caption' naming an image in {folder}")
            files.append(Path(folder) / row[0])
            caps.append(" " + row[1].strip())
    if len(files) < 2:
        raise DataError(f"{table}: at least 2 captioned images (one for validation)")
    return files, caps


def quantized_tower(resolution: int, bits: int, n_calib: int = 256) -> tuple[Any, Any]:
    """(float image tower, its QANN) of the bundled tiny CLIP seeing ``resolution`` × ``resolution`` images,
    calibrated on training images area-averaged to that size."""
    import spikemfm
    from spikemfm.app.tiny_clip import calibration_images
    from spikemfm.models.tiny_clip import downsample, load_tiny_clip, tower_at

    visual = tower_at(load_tiny_clip().visual, resolution)
    calib = [downsample(b, resolution) for b in calibration_images(n_calib)]
    return visual, spikemfm.quantize(visual, spikemfm.QuantConfig(bits=bits), calib)


def towers(cfg: CaptionConfig) -> tuple[Any, Any]:
    """(float image tower, the tower on the config's path: float, QANN or SNN) of the bundled tiny CLIP, seeing
    images at the config's resolution."""
    import spikemfm
    from spikemfm.models.tiny_clip import load_tiny_clip, tower_at

    if cfg.path == "fp32":
        visual = tower_at(load_tiny_clip().visual, cfg.resolution)
        return visual, visual
    visual, qann = quantized_tower(cfg.resolution, cfg.bits)
    return visual, qann if cfg.path == "qann" else spikemfm.convert(qann, spikemfm.ConvertConfig(None))


def embed(tower: Any, x: torch.Tensor) -> torch.Tensor:
    """The tower's output on images x: a spiking tower stepped until each image settles (≡ its QANN)."""
    import spikemfm
    from spikemfm.snn.model import SpikingModel

    with torch.no_grad():
        if isinstance(tower, SpikingModel):
            return spikemfm.simulate(tower, x, 64, adaptive=True).outputs[-1].float()
        return tower(x).float()


def train(cfg: CaptionConfig, lm: Any, tok: Any, visual: Any, spec: Any, folder: Path | None,
          progress: Callable[[str], None] | None) -> Any:
    """A projector trained on the folder's captioned images, or on Fashion-MNIST training images."""
    from spikemfm.app.data import fit_images, read_images
    from spikemfm.data import load_fashion_mnist
    from spikemfm.lm.caption import TrainConfig, train_projector
    from spikemfm.models.tiny_clip import PROMPT_CLASSNAMES, downsample

    if folder is not None:
        files, caps = folder_pairs(folder)
        x = fit_images(read_images(files), spec)[0]
    else:
        x, y = load_fashion_mnist("train").subset(cfg.train_images, seed=1).tensors()
        x = downsample(x, cfg.resolution)
        caps = [" " + PROMPT_CLASSNAMES[int(c)] for c in y]
    val = [i for i in range(len(caps)) if i % 8 == 7] or [len(caps) - 1]
    fit = [i for i in range(len(caps)) if i not in set(val)]
    feats = embed(visual, x)
    proj, _ = train_projector(lm, tok, feats[fit], [caps[i] for i in fit], feats[val], [caps[i] for i in val],
                              TrainConfig(k=cfg.k, steps=cfg.steps, batch=min(16, len(fit))), progress)
    return proj


def run_caption(images: list[str], cfg: CaptionConfig, projector: str | None = None, train_folder: str | None = None,
                save_to: str | None = None, progress: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """One row per image: its description on the config's path (and, for the SNN, whether every pass settled)."""
    from spikemfm.app import input_spec
    from spikemfm.app.data import fit_images, read_images
    from spikemfm.convert.qann import as_graph
    from spikemfm.lm.build import build_paths
    from spikemfm.lm.caption import describe
    from spikemfm.lm.generate import runner_for

    if projector is not None and train_folder is not None:
        raise ConfigError("--projector and --train-folder: give one (a trained projector, or the data to train one)")
    files = [Path(f) for f in images]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: no such image file")
    proj = load_projector(projector) if projector is not None else None
    paths = ("fp32",) if cfg.path == "fp32" else ("fp32", cfg.path)
    lms, tok = build_paths(cfg.model, paths, cfg.bits, progress=progress is not None)
    visual, tower = towers(cfg)
    spec = input_spec(visual, as_graph(visual))
    if proj is None:
        proj = train(cfg, lms["fp32"], tok, visual, spec, None if train_folder is None else Path(train_folder), progress)
        if save_to is not None:
            save_projector(proj, save_to, cfg.resolution)
    elif proj.resolution != cfg.resolution:
        raise ConfigError(f"--projector {projector}: trained on the tower at resolution {proj.resolution}; give "
                          f"--resolution {proj.resolution}")
    elif proj.width != lms["fp32"].config.hidden_size:
        raise ConfigError(f"--projector {projector}: made for an LM of width {proj.width}, {cfg.model} has "
                          f"{lms['fp32'].config.hidden_size}")
    x = fit_images(read_images(files), spec)[0]
    feats, rows = embed(tower, x), []
    with torch.no_grad():
        vis = proj(feats)
    for i, f in enumerate(files):
        lm = lms[cfg.path]
        g = describe(lm, runner_for(lm), vis[i:i + 1], tok, cfg.max_new_tokens)
        rows.append({"image": str(f), "description": tok.decode(g.new_tokens[0], skip_special_tokens=True).strip(),
                     "path": cfg.path, "exact": g.exact, "k": cfg.k, "resolution": cfg.resolution})
    return rows
