"""The main job behind ``spikemfm demo``: FP32 → quantize → convert → simulate on the embedded default."""
from __future__ import annotations

import time
from dataclasses import dataclass

from spikemfm.core.checks import check_field_types
from spikemfm.convert import ConvertConfig, QuantConfig
from spikemfm.data import load_fashion_mnist
from spikemfm.errors import ConfigError
from spikemfm.app.zero_shot import zero_shot_accuracy
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.app.tiny_clip import (calibration_images, convert_tiny_clip, qann_classifier, qann_zero_shot,
                               snn_classifier, snn_zero_shot_curve)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: FP32 on ``n_test`` images, QANN/SNN on the first ``n_snn`` of them."""

    n_test: int = 10000
    n_snn: int = 1000
    bits: int = 8
    max_spikes_per_step: int | None = 16
    timesteps: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    batch_size: int = 100
    stream_frames: int = 16

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0 < self.n_snn <= self.n_test <= 10000:
            raise ConfigError(f"DemoConfig: need 0 < n_snn ({self.n_snn}) <= n_test ({self.n_test}) <= 10000")
        if not self.timesteps or min(self.timesteps) < 1:
            raise ConfigError(f"DemoConfig.timesteps={self.timesteps}: need positive step counts")
        if self.batch_size < 1:
            raise ConfigError(f"DemoConfig.batch_size={self.batch_size}: must be >= 1")
        if self.stream_frames == 1 or self.stream_frames < 0:
            raise ConfigError(f"DemoConfig.stream_frames={self.stream_frames}: 0 (no stream row) or >= 2")


def run_demo(cfg: DemoConfig, progress: bool = True) -> list[dict]:
    """Runs the pipeline; returns one row per stage / T: stage, images, T, top1_accuracy, agree_with_qann, seconds."""
    model = load_tiny_clip()
    test = load_fashion_mnist("test")
    if cfg.n_test < len(test):
        test = test.subset(cfg.n_test)
    t0 = time.perf_counter()
    clf = model.zero_shot_classifier()
    acc = zero_shot_accuracy(lambda x: model(x, clf), test, cfg.batch_size, progress, "FP32 zero-shot")
    rows = [{"stage": "FP32 ANN", "images": len(test), "T": "-", "top1_accuracy": acc, "agree_with_qann": "-",
             "seconds": round(time.perf_counter() - t0, 2)}]
    snn_test = test.subset(cfg.n_snn, seed=1) if cfg.n_snn < len(test) else test
    if len(snn_test) < len(test):  # the FP32 figure on exactly the images the QANN/SNN rows use
        t0 = time.perf_counter()
        acc = zero_shot_accuracy(lambda x: model(x, clf), snn_test, cfg.batch_size, False)
        rows.append({"stage": "FP32 ANN (same images as below)", "images": len(snn_test), "T": "-",
                     "top1_accuracy": acc, "agree_with_qann": "-", "seconds": round(time.perf_counter() - t0, 2)})
    t0 = time.perf_counter()
    s = convert_tiny_clip(model, QuantConfig(bits=cfg.bits), ConvertConfig(cfg.max_spikes_per_step),
                          calibration_images())
    q_clf = qann_classifier(s, model)
    rows.append({"stage": f"QANN {cfg.bits}-bit", "images": len(snn_test), "T": "-",
                 "top1_accuracy": qann_zero_shot(s, q_clf, snn_test), "agree_with_qann": 1.0,
                 "seconds": round(time.perf_counter() - t0, 2)})
    t0 = time.perf_counter()
    steps = max(cfg.timesteps)
    curve = snn_zero_shot_curve(s, snn_classifier(s, model, steps), q_clf, snn_test, steps, cfg.batch_size,
                                progress, f"SNN T={steps}")
    spikes = "graded" if cfg.max_spikes_per_step is None else f"<={cfg.max_spikes_per_step}"
    for t in sorted(cfg.timesteps):
        rows.append({"stage": f"SNN {cfg.bits}-bit, {spikes} spikes/step", "images": len(snn_test), "T": t,
                     "top1_accuracy": float(curve.accuracy[t - 1]),
                     "agree_with_qann": float(curve.agreement[t - 1]),
                     "seconds": round(time.perf_counter() - t0, 2) if t == steps else ""})
    if cfg.stream_frames:
        rows.append(_stream_row(s, model, q_clf, cfg))
    return rows


def _stream_row(s, model, q_clf, cfg: DemoConfig) -> dict:
    """The image tower over real video (vtest), state kept across frames, each frame run until it settles: the
    frames' top-1 agreement with the QANN (no labels: Fashion-MNIST classes on street video)."""
    import torch.nn.functional as F

    from spikemfm.app import input_spec
    from spikemfm.app.streaming import video_inputs
    from spikemfm.snn import simulate_stream

    t0 = time.perf_counter()
    frames, _ = video_inputs("vtest", input_spec(model.visual, s.image_qann.graph), cfg.stream_frames)
    stream = simulate_stream(s.image, frames, "settle")
    top1 = (lambda out: (F.normalize(out.double(), dim=-1) @ q_clf.T.double()).argmax(-1))  # noqa: E731
    agree = sum(float(top1(stream.outputs[f]).eq(top1(s.image_qann(frames[f]))).double().mean())
                for f in range(len(frames))) / len(frames)
    return {"stage": "SNN stream: vtest frames, state kept", "images": len(frames),
            "T": f"settle ({float(stream.steps_used.double().mean()):.1f}/frame)",
            "top1_accuracy": "-", "agree_with_qann": agree, "seconds": round(time.perf_counter() - t0, 2)}
