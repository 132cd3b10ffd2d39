"""Where event-driven neuron updates pay: every neuron every step against only the neurons whose input changed or
that fire (``neuron_updates = "on_input"``), on static inputs and on real video streams.

Each profile pair differs only in that policy: ``horowitz45`` / ``horowitz45_event`` (shipped: a time-stepped and
an event-driven digital design on Horowitz's 45 nm figures) and ``loihi2`` / ``loihi2_event_whatif``
(``experiments/profiles/loihi2_event_whatif.toml``: loihi2's derived terms with the event-driven policy — a what-if,
not a documented Loihi 2 feature). Every run counts its updates (``simulate(..., count_updates=True)``).

Static part: the tiny-CLIP image tower (Fashion-MNIST test images, zero-shot top-1) and the real all-MiniLM-L6-v2
(held-out sentences, 32 tokens, cosine to its FP32 embedding), 4 and 8 bits, graded spikes (adaptive ≤ 16: exact
at step 1, quiet at 2) and binary spikes (T = 8 and adaptive ≤ 32). Stream part: the tiny-CLIP tower over real
video (opencv-doc's vtest and Megamind), graded spikes, each frame to its quiet step, state kept across frames
(:func:`spikemfm.app.streaming.stream_report`, whose dense delta baseline skips rows whose input did not change).

Writes ``results/neuron_updates/static.{json,csv,md}``, ``stream.{json,csv,md}`` and ``updates.png``.
Run: ``python experiments/neuron_updates.py`` (~10 min on 2 cores).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikemfm.app.data import DataSource, sentence_split
from spikemfm.app.streaming import stream_report, video_inputs
from spikemfm.app.tiny_clip import calibration_images, classifier_from_embeddings, prompts
from spikemfm.app import input_spec
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.data import load_fashion_mnist
from spikemfm.energy import dense_energy, estimate_energy, load_profile
from spikemfm.energy.workload import steps_run
from spikemfm.core.io import output_set, save_figure, save_table
from spikemfm.models.text import load_minilm
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.snn import simulate
from spikemfm.core.provenance import add_results_args, results_run

WHATIF = Path(__file__).resolve().parent / "profiles" / "loihi2_event_whatif.toml"
PAIRS = (("horowitz45", "horowitz45_event"), ("loihi2", str(WHATIF)))
RUNS = {"graded": (None, [], 16), "binary": (1, [8], 32)}  # spike bound, fixed T rows, adaptive cap


def _zero_shot(clip) -> Callable[[torch.Tensor], torch.Tensor]:
    """The tiny CLIP's zero-shot classifier: image embeddings (B, D) -> class indices (B,)."""
    with torch.no_grad():
        clf = classifier_from_embeddings(clip.text.encode(prompts())).double()
    return lambda out: (F.normalize(out.double(), dim=-1) @ clf.T).argmax(-1)


def _towers(args) -> list[tuple[str, int, Any, Any, Callable[[torch.Tensor], float]]]:
    """(tower, bits, qann, inputs, score) for the static part."""
    clip = load_tiny_clip()
    x, y = load_fashion_mnist("test").subset(args.images, seed=0).tensors()
    classify = _zero_shot(clip)
    top1 = (lambda out: float(classify(out).eq(y).double().mean()))
    text = load_minilm(32)
    held_out, _ = sentence_split(DataSource(), "test", args.sentences)
    calib_text, _ = sentence_split(DataSource(), "train", 64)
    tok = text.tokenize(held_out)
    with torch.no_grad():
        ref = text.pooled(tok["input_ids"], tok["attention_mask"]).double()
    cos = (lambda out: float(F.cosine_similarity(out.double(), ref, dim=-1).mean()))
    calib = [text.tokenize(calib_text[i:i + 32]) for i in range(0, len(calib_text), 32)]
    out = []
    for b in args.bits:
        out.append(("tiny-clip image", b, quantize(clip.visual, QuantConfig(bits=b), calibration_images()), x, top1))
        out.append(("all-MiniLM-L6-v2", b, quantize(text, QuantConfig(bits=b), calib), tok, cos))
    return out


def _pairs(profiles) -> list[tuple[str, str]]:
    """(every-step name, on-input name) of each pair, from the loaded profiles (in PAIRS order)."""
    return [(profiles[i].name, profiles[i + 1].name) for i in range(0, len(profiles), 2)]


def _priced(run, profiles, bits: int) -> dict:
    """Per profile: SNN nJ and SNN / dense int8 (on the profile's dense reference); the first profile's dense int8
    and same-width nJ."""
    row = {}
    for p in profiles:
        rep = estimate_energy(run, p)
        row[f"{p.name}:snn_nJ"] = None if rep.snn_missing else rep.snn_total / 1e3
        int8, _ = dense_energy(run, p, 8)
        row[f"{p.name}:snn/int8"] = None if rep.snn_missing or not int8 else round(rep.snn_total / int8, 3)
    first = profiles[0]
    row[f"{first.name}:dense_int8_nJ"] = dense_energy(run, first, 8)[0] / 1e3
    row[f"{first.name}:dense_same_bits_nJ"] = dense_energy(run, first, bits)[0] / 1e3
    return row


def static_rows(args, profiles) -> list[dict]:
    rows = []
    for tower, bits, qann, x, score in tqdm(_towers(args), desc="towers"):
        for mode, (bound, fixed, cap) in RUNS.items():
            sim = simulate(convert(qann, ConvertConfig(max_spikes_per_step=bound)), x, cap, adaptive=True,
                           count_updates=True)
            stop = sim.outputs[sim.steps_used - 1, torch.arange(sim.batch_size)]
            runs = [(f"T={t}", sim.first(t), score(sim.outputs[t - 1])) for t in fixed]
            runs.append((f"adaptive<={cap}", sim, score(stop)))
            for label, run, acc in runs:
                updated = sum(float(s.updates.sum()) for s in run.neuron_stats.values()) / run.batch_size
                fired = sum(float(s.events.sum()) for s in run.neuron_stats.values()) / run.batch_size
                steps = steps_run(run)
                every = sum(s.neurons for s in run.neuron_stats.values()) * steps  # neuron-steps
                rows.append({"tower": tower, "bits": bits, "spikes": mode, "run": label, "score": round(acc, 4),
                             "steps": round(steps, 3), "updated_share": round(updated / every, 4),
                             "firing_share": round(fired / every, 4), **_priced(run, profiles, bits)})
                for every_p, event_p in _pairs(profiles):  # what the event-driven policy saves of the SNN's energy
                    a, b = rows[-1][f"{every_p}:snn_nJ"], rows[-1][f"{event_p}:snn_nJ"]
                    rows[-1][f"saving_{every_p}"] = round(1 - b / a, 4)
                print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict) -> str:
    return (f"{r['tower'][:9]:>9} {r['bits']}b {r['spikes']:>6} {r['run']:>12}: updated {r['updated_share']:.3f} "
            f"h45 {r['horowitz45:snn/int8']}x -> {r['horowitz45_event:snn/int8']}x int8")


def stream_rows(args, profiles) -> list[dict]:
    clip = load_tiny_clip()
    classify = _zero_shot(clip)
    rows = []
    for video in tqdm(args.videos, desc="videos"):
        for bits in args.bits:
            qann = quantize(clip.visual, QuantConfig(bits=bits), calibration_images(256))
            frames, _ = video_inputs(video, input_spec(clip.visual, qann.graph), args.frames)
            _, s = stream_report(qann, frames, None, "settle", profiles, 64, classify)
            row = {"video": video, "bits": bits, "frames": args.frames, "mean_steps": s["mean_steps"],
                   "changed_patches": s["changed_patches"], "spikes_later/first": s["spikes_later/first"]}
            for p in profiles:
                for k in ("snn_nJ", "still_snn_nJ", "dense_int8_nJ", "dense_delta_nJ", "break_even_vs_dense_int8"):
                    row[f"{p.name}:{k}"] = s[f"{p.name}:{k}"]
            for every_p, name in _pairs(profiles):
                row[f"saving_{every_p}"] = round(1 - row[f"{name}:snn_nJ"] / row[f"{every_p}:snn_nJ"], 4)
                row[f"still_saving_{every_p}"] = round(1 - row[f"{name}:still_snn_nJ"] / row[f"{every_p}:still_snn_nJ"], 4)
            rows.append(row)
            print(f"{video} {bits}b: per frame h45 {row['horowitz45:snn_nJ']:.4g} -> event "
                  f"{row['horowitz45_event:snn_nJ']:.4g} nJ, int8 {row['horowitz45:dense_int8_nJ']:.4g}, still "
                  f"{row['horowitz45:still_snn_nJ']:.4g} -> {row['horowitz45_event:still_snn_nJ']:.4g}", flush=True)
    return rows


def plot(static: list[dict], stream: list[dict], pairs: list[tuple[str, str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{r['tower'][:9]} {r['bits']}b {r['spikes'][:3]} {r['run']}" for r in static]
    pos = range(len(static))
    for k, (every, name) in enumerate(pairs):
        axes[0].scatter(pos, [r[f"{every}:snn/int8"] for r in static], marker="o^"[k], label=f"{every}: every step")
        axes[0].scatter(pos, [r[f"{name}:snn/int8"] for r in static], marker="o^"[k], facecolors="none",
                        edgecolors="C%d" % (k + 2), label=f"{name}: on input")
    axes[0].axhline(1.0, color="k", ls="--", lw=0.8)
    axes[0].set_xticks(list(pos), labels, rotation=70, fontsize=6)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("SNN energy / dense int8 (static inputs)")
    axes[0].legend(fontsize=6)
    slabels = [f"{r['video']} {r['bits']}b" for r in stream]
    bars = (("horowitz45:snn_nJ", "SNN, every step"), ("horowitz45_event:snn_nJ", "SNN, on input"),
            ("horowitz45:still_snn_nJ", "still frame, every step"),
            ("horowitz45_event:still_snn_nJ", "still frame, on input"),
            ("horowitz45:dense_int8_nJ", "dense int8"), ("horowitz45:dense_delta_nJ", "dense delta"))
    width = 0.8 / len(bars)
    for k, (key, lab) in enumerate(bars):
        axes[1].bar([i + (k - (len(bars) - 1) / 2) * width for i in range(len(stream))], [r[key] for r in stream],
                    width, label=lab)
    axes[1].set_xticks(range(len(stream)), slabels, fontsize=7)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("energy per frame after the first, horowitz45 (nJ)")
    axes[1].set_title("video streams, tiny-CLIP tower, graded, settle", fontsize=9)
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=200, help="Fashion-MNIST test images (static part)")
    ap.add_argument("--sentences", type=int, default=32, help="held-out sentences (static part)")
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--videos", nargs="+", default=["vtest", "megamind"])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--out", default="results/neuron_updates")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    profiles = [load_profile(p) for pair in PAIRS for p in pair]
    static = static_rows(args, profiles)
    stream = stream_rows(args, profiles)
    config = {**vars(args), "profiles": [p.name for p in profiles]}
    with output_set(Path(args.out)) as stage:
        save_table(stage, "static", static, config, "neuron updates every step vs on input: static inputs")
        save_table(stage, "stream", stream, config, "neuron updates every step vs on input: video streams "
                   "(means over frames after the first)")
        plot(static, stream, _pairs(profiles), stage / "updates.png")
    print(f"wrote {args.out}/static.{{json,csv,md}}, stream.{{json,csv,md}}, updates.png (the wide tables)")


if __name__ == "__main__":
    main()
