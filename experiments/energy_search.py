"""Where does the spiking path pay? A search over bits, spike modes, T (fixed and adaptive) and pruning, priced on
every hardware profile against dense paths of the same accuracy, with Pareto fronts.

The tiny CLIP image tower (its zero-shot accuracy on real Fashion-MNIST test images, against the FP32 text tower's
class embeddings, so that only the image tower's configuration varies). Each QANN configuration (uniform 2–8 bits,
mixed-precision bit budgets, energy-aware allocations under a share of the all-8-bit spike energy on a profile,
pruned heads and MLP channels, QAT at low bits) is converted once per spike mode (binary, ≤4-spike bursts,
graded) and simulated once, adaptively, up to the largest T: the run's first t steps are exactly a fixed-T run of t
(``SimResult.first``), and the adaptive row stops each image at its first quiet step. Dense rows: the FP32 ANN and
each QANN run densely at its own width (a mixed QANN at the ceiling of its budget), priced with
:func:`spikemfm.energy.dense_energy` on the profile's dense reference. A row is on its profile's Pareto front when
no other row of that profile is at least as accurate and cheaper.

Writes ``results/energy_search/pareto.{json,csv,md,png}`` (JSON rows: profile, path, accuracy, energy_nj, config,
pareto) and ``best.{json,csv,md}``: per profile, the cheapest SNN and the cheapest dense row within 1 pp of the best
dense accuracy. SNN rows carry ``t_exact``: the first step at which the run equals its QANN (None: not within
the largest T).

Run: ``python experiments/energy_search.py`` (``--images 500`` by default; ``--images 10000`` for the full split).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikemfm.app.tiny_clip import calibration_images, classifier_from_embeddings, prompts
from spikemfm.convert import (ConvertConfig, MixedPrecisionConfig, PruneConfig, QATConfig, QuantConfig, prune, qat,
                              quantize)
from spikemfm.snn import convert
from spikemfm.convert.mixed import allocate
from spikemfm.convert.qann import analyze
from spikemfm.data import load_fashion_mnist
from spikemfm.energy import available_profiles, counts_updates, dense_energy, estimate_energy
from spikemfm.core.io import output_set, save_figure, save_table
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.snn import simulate
from spikemfm.core.provenance import add_results_args, results_run

SPIKES = {"binary": 1, "burst4": 4, "graded": None}


def _qanns(model, calib, args):
    """(name, config dict, QANN, dense bits) of every compression configuration."""
    for b in args.bits:
        yield f"uniform {b}-bit", {"bits": b}, quantize(model, QuantConfig(bits=b), calib), b
    analysis = analyze(model, MixedPrecisionConfig(), calib) if args.budgets or args.energy_budgets else None
    for budget in args.budgets:
        qann = quantize(model, MixedPrecisionConfig(budget=budget), calib, analysis=analysis)
        yield f"mixed {budget:g}-bit", {"budget": budget}, qann, math.ceil(budget)
    for profile, share in args.energy_budgets:  # a share of the all-8-bit activations' spike energy on the profile
        top = allocate(analysis.sensitivity, MixedPrecisionConfig(energy_budget_nj=1e30, energy_profile=profile))
        nj = share * top.summary["spike_energy_at_highest_nj"]
        qann = quantize(model, MixedPrecisionConfig(energy_budget_nj=nj, energy_profile=profile), calib,
                        analysis=analysis)
        s = qann.allocation.summary
        yield (f"energy {profile} {share:g}", {"energy_budget": profile, "share": share, "nJ": round(nj, 1),
                                               "avg_act_bits": round(s["avg_act_bits"], 2)},
               qann, math.ceil(max(s["avg_weight_bits"], s["avg_act_bits"])))
    if args.prune:
        pruned = prune(model, PruneConfig(head_ratio=args.prune, mlp_ratio=args.prune), calib)
        for b in args.prune_bits:
            yield (f"pruned {args.prune:g} {b}-bit", {"bits": b, "prune": args.prune},
                   quantize(pruned, QuantConfig(bits=b), calib), b)
    for b in args.qat_bits:
        train = calibration_images(args.qat_images, 128, seed=1)
        qann = qat(quantize(model, QuantConfig(bits=b), calib), train, config=QATConfig(steps=args.qat_steps),
                   progress=True)
        yield f"QAT {b}-bit", {"bits": b, "qat_steps": args.qat_steps}, qann, b


def _accuracy(emb: torch.Tensor, classifier: torch.Tensor, y: torch.Tensor) -> float:
    return float((F.normalize(emb.double(), dim=-1) @ classifier.T).argmax(-1).eq(y).double().mean())


def snn_rows(qann, cfg: dict, x, score, steps: list[int], profiles: list[str]) -> list[dict]:
    """Per spike mode, one adaptive run to the largest T read at each T and at each input's quiet step, scored by
    ``score(outputs) -> float`` and priced on every profile."""
    rows = []
    with torch.no_grad():
        ref = qann(x)
    for mode, bound in SPIKES.items():
        sim = simulate(convert(qann, ConvertConfig(max_spikes_per_step=bound)), x, max(steps), adaptive=True,
                       count_updates=counts_updates(profiles))
        t_exact = sim.t_exact(ref)  # None: not exact within the largest T
        runs = [(f"T={t}", sim.first(t), score(sim.outputs[t - 1])) for t in steps]
        stop = sim.outputs[sim.steps_used - 1, torch.arange(sim.batch_size)]  # each input read at its quiet step
        runs.append((f"adaptive<={max(steps)}", sim, score(stop)))
        for label, run, acc in runs:
            for p in profiles:
                rep = estimate_energy(run, p)
                rows.append({"profile": p, "path": "snn", "accuracy": acc,
                             "energy_nj": None if rep.snn_missing else rep.snn_total / 1e3,
                             "config": {**cfg, "spikes": mode, "T": label}, "steps": round(rep.steps, 3),
                             "spike_rate": round(rep.spike_rate, 5), "messages": rep.messages,
                             "t_exact": t_exact})
    return rows


def _dense_rows(sim, accuracy: float, cfg: dict, bits: int, profiles: list[str]) -> list[dict]:
    rows = []
    for p in profiles:
        pj, missing = dense_energy(sim, p, bits)
        rows.append({"profile": p, "path": "dense", "accuracy": accuracy,
                     "energy_nj": None if missing else pj / 1e3, "config": {**cfg, "dense_bits": bits}})
    return rows


def mark_pareto(rows: list[dict]) -> None:
    """Sets ``pareto`` on every row: no row of its profile is at least as accurate and strictly cheaper (or
    cheaper-or-equal and strictly more accurate)."""
    for r in rows:
        mine = [o for o in rows if o["profile"] == r["profile"] and o["energy_nj"] is not None]
        r["pareto"] = r["energy_nj"] is not None and not any(
            o["accuracy"] >= r["accuracy"] and o["energy_nj"] <= r["energy_nj"]
            and (o["accuracy"] > r["accuracy"] or o["energy_nj"] < r["energy_nj"]) for o in mine)


def best_per_profile(rows: list[dict], tolerance_pp: float = 1.0) -> list[dict]:
    """Per profile: the best dense accuracy, the cheapest dense and the cheapest SNN row within ``tolerance_pp``
    of it, and their energy ratio (the verdict's numbers)."""
    out = []
    for p in dict.fromkeys(r["profile"] for r in rows):
        mine = [r for r in rows if r["profile"] == p and r["energy_nj"] is not None]
        top = max(r["accuracy"] for r in mine if r["path"] == "dense")
        ok = [r for r in mine if r["accuracy"] >= top - tolerance_pp / 100]
        dense = min((r for r in ok if r["path"] == "dense"), key=lambda r: r["energy_nj"])
        snn = min((r for r in ok if r["path"] == "snn"), key=lambda r: r["energy_nj"], default=None)
        out.append({"profile": p, "best_dense_accuracy": top, "dense_config": str(dense["config"]),
                    "dense_accuracy": dense["accuracy"], "dense_nJ": dense["energy_nj"],
                    "snn_config": str(snn["config"]) if snn else "none within tolerance",
                    "snn_accuracy": snn["accuracy"] if snn else None, "snn_nJ": snn["energy_nj"] if snn else None,
                    "snn/dense": round(snn["energy_nj"] / dense["energy_nj"], 3) if snn else None})
    return out


def plot(rows: list[dict], path: Path, ylabel: str = "zero-shot accuracy",
         xlabel: str = "energy per image (nJ)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    cols = 3
    fig, axes = plt.subplots(-(-len(profiles) // cols), cols, figsize=(12, 3.4 * -(-len(profiles) // cols)),
                             squeeze=False)
    for ax, p in zip(axes.flat, profiles):
        for kind, style in (("dense", "s"), ("snn", "o")):
            sel = [r for r in rows if r["profile"] == p and r["path"] == kind and r["energy_nj"] is not None]
            ax.scatter([r["energy_nj"] for r in sel], [r["accuracy"] for r in sel], marker=style, s=8, alpha=0.35,
                       label=kind)
            front = sorted((r for r in sel if r["pareto"]), key=lambda r: r["energy_nj"])
            ax.plot([r["energy_nj"] for r in front], [r["accuracy"] for r in front], style + "-", lw=1.2,
                    label=f"{kind} Pareto front")
        ax.set_xscale("log")
        ax.set_title(p, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(profiles):]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _energy_budget(text: str) -> tuple[str, float]:
    profile, _, share = text.partition(":")
    try:
        return profile, float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give PROFILE:SHARE, e.g. loihi2:0.6") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=500, help="Fashion-MNIST test images (10000: the full split)")
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 6, 8])
    ap.add_argument("--budgets", type=float, nargs="*", default=[3.0, 5.0])
    ap.add_argument("--prune", type=float, default=0.25, help="head and MLP-channel ratio of the pruned rows")
    ap.add_argument("--prune-bits", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--energy-budgets", type=_energy_budget, nargs="*",
                    default=[("loihi2", 0.6), ("loihi2", 0.8), ("horowitz45", 0.25), ("horowitz45", 0.5)],
                    help="PROFILE:SHARE energy-aware allocations: SHARE of the all-8-bit activations' spike energy")
    ap.add_argument("--qat-bits", type=int, nargs="*", default=[2, 3])
    ap.add_argument("--qat-steps", type=int, default=500)
    ap.add_argument("--qat-images", type=int, default=8192, help="Fashion-MNIST training images QAT draws on")
    ap.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--profiles", nargs="+", default=available_profiles())
    ap.add_argument("--out", default="results/energy_search")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    model = load_tiny_clip()
    test = load_fashion_mnist("test")
    x, y = (test.subset(args.images, seed=0) if args.images < len(test) else test).tensors()
    with torch.no_grad():
        classifier = classifier_from_embeddings(model.text.encode(prompts())).double()
        fp32 = _accuracy(model.visual(x), classifier, y)
    calib = calibration_images()
    rows: list[dict] = []
    configs = list(_qanns(model.visual, calib, args))
    for name, cfg, qann, dense_bits in tqdm(configs, desc="configurations"):
        with torch.no_grad():
            q_acc = _accuracy(qann(x), classifier, y)
        rows += snn_rows(qann, cfg, x, lambda out: _accuracy(out, classifier, y), args.timesteps, args.profiles)
        probe = simulate(convert(qann, ConvertConfig(None)), x[:8], 1)  # the graph's work, for dense pricing
        rows += _dense_rows(probe, q_acc, cfg, dense_bits, args.profiles)
        if name == f"uniform {max(args.bits)}-bit":
            rows += _dense_rows(probe, fp32, {"fp32": True}, 32, args.profiles)
    title = f"tiny-clip image tower, {len(y)} Fashion-MNIST test images: SNN and dense paths per profile"
    save_search(rows, vars(args), Path(args.out), title, "1 pp of the best dense accuracy")


def save_search(rows: list[dict], config: dict, out: Path, title: str, tolerance: str, **plot_labels: str) -> None:
    """Marks the Pareto fronts, writes pareto.* and best.* as one output set and prints the best rows."""
    mark_pareto(rows)
    best = best_per_profile(rows)
    with output_set(out) as stage:
        save_table(stage, "pareto", rows, config, title)
        save_table(stage, "best", best, config, f"cheapest SNN and dense rows within {tolerance}, per profile")
        plot(rows, stage / "pareto.png", **plot_labels)
    for r in best:
        print(f"{r['profile']:>16}: dense {r['dense_nJ']:.4g} nJ ({r['dense_accuracy']:.4f}); SNN "
              f"{r['snn_nJ'] if r['snn_nJ'] is None else format(r['snn_nJ'], '.4g')} nJ -> SNN/dense "
              f"{r['snn/dense']}")
    print(f"wrote {out}/pareto.{{json,csv,md,png}} and best.{{json,csv,md}}")


if __name__ == "__main__":
    main()
