"""System energy per generated token: SmolLM2-135M's exact spiking decoder on Loihi 2 chips against a dense int8
edge accelerator whose weights stream from DRAM — batch 1 / 8 / 64, on-chip buffer 1 MiB / 8 MiB / the whole
model — and the conditions under which the spiking system would use ≤ 0.5× the dense one's energy per token.

Protocol: the QANN is calibrated on the standard library's calibration split (8 windows of 128 tokens,
SmoothQuant α = 0.5 as chosen on validation in results/decoder_ppl) and converted with graded spikes; the prompt is
the first ``--prompt-tokens`` tokens of the test split; ``--tokens`` greedy tokens are decoded, each pass stepped
until it settles (SNN ≡ QANN), and priced by :mod:`spikemfm.energy.system` (every assumed term is named in the
profiles). Rows are the medians over the decoded tokens. Writes results/system_energy/{json,csv,md,png}.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from spikemfm.core.io import output_set, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.data.code import code_windows, stdlib_files
from spikemfm.lm.build import build_paths
from spikemfm.energy.system import system_medians
from spikemfm.lm.energy import token_reports

MIB = 1 << 20


def conditions(snn: dict, dense: dict, floor_us: float) -> list[dict]:
    """SNN / dense as the chip's static power per chip and its time per synaptic operation scale: static energy
    is chips × power × latency, latency = (steps + depth − 1) × max(floor, t_step), so both matter; the chip
    count does not (more chips shorten t_step and add power in proportion)."""
    rows = []
    pipeline = snn["latency_ms"] * 1e3 / snn["t_step_us"]  # steps + depth − 1
    for power_x in (1.0, 0.1, 0.01):
        for time_x in (1.0, 0.1, 0.01):
            latency_us = pipeline * max(floor_us, snn["t_step_us"] * time_x)
            static = snn["static_nj"] * power_x * latency_us / (snn["latency_ms"] * 1e3)
            e = snn["ops_nj"] + snn["interchip_nj"] + static
            rows.append({"static_power_x": power_x, "synop_time_x": time_x, "latency_ms": round(latency_us / 1e3, 3),
                         "snn_nj": round(e, 1), "dense_nj": round(dense["energy_nj"], 1),
                         "snn_over_dense": round(e / dense["energy_nj"], 3), "meets_0.5x": e <= 0.5 * dense["energy_nj"]})
    return rows


def dram_sensitivity(snn: dict, dense: dict, assumed: float) -> list[dict]:
    """SNN / dense as the dense side's DRAM energy per bit varies around the profile's assumed value (the DRAM
    term of a row is linear in it; no primary LPDDR5 figure could be checked offline — see the profile)."""
    rows = []
    for pj in (2.5, 5.0, 10.0, 20.0, 40.0):
        e = dense["energy_nj"] + dense["dram_nj"] * (pj / assumed - 1)
        rows.append({"dram_pj_per_bit": pj, "dense_nj": round(e, 1), "snn_nj": round(snn["energy_nj"], 1),
                     "snn_over_dense": round(snn["energy_nj"] / e, 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--onchip-mib", type=float, nargs="+", default=[1.0, 8.0], help="plus the whole model")
    ap.add_argument("--out", default="results/system_energy")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    models, tok = build_paths(args.model, ("snn",), 8, 0.5, progress=True)
    prompt = code_windows(stdlib_files("test"), tok, args.prompt_tokens, 1)
    systems = tuple((b, c) for b in args.batch for c in [*(m * MIB for m in args.onchip_mib), None])
    raw = token_reports(models["snn"], prompt, args.tokens, [args.profile], systems, args.model)
    rows = system_medians(raw)
    snn = next(r for r in rows if r["path"] == "snn")
    dense1 = next(r for r in rows if r["path"] == "dense" and r["batch"] == 1
                  and r["onchip"] == f"{args.onchip_mib[0]:g} MiB")
    moon = snn["energy_nj"] / dense1["energy_nj"]
    from spikemfm.energy import load_profile

    cond = conditions(snn, dense1, load_profile(args.profile).terms["step_floor_us"].value)
    dense_p = load_profile(load_profile(args.profile).dense_reference or args.profile)
    dram = dram_sensitivity(snn, dense1, dense_p.terms["dram_pj_per_bit"].value)
    with output_set(Path(args.out)) as stage:
        save_table(stage, "system_energy", rows, vars(args), f"{args.model}: system energy per generated token "
                   f"(median of {args.tokens} tokens), {args.profile} SNN vs dense int8", {"moonshot_ratio": moon})
        save_table(stage, "conditions", cond, vars(args), "SNN / dense (batch 1, "
                   f"{args.onchip_mib[0]:g} MiB on chip) as the chip's static power and time per synaptic op scale")
        save_table(stage, "dram_sensitivity", dram, vars(args), "SNN / dense (batch 1, "
                   f"{args.onchip_mib[0]:g} MiB on chip) as the DRAM energy per bit varies")
        plot(rows, stage / "system_energy.png", args.model)
    for r in rows:
        print(f"{r['path']:5} {r['profile']:13} b={r['batch']:<3} {r['onchip']:17} "
              f"E={r['energy_nj']:.4g} nJ  dram={r['dram_nj']:.3g} static={r['static_nj']:.3g} chips={r['chips']}")
    print(f"moonshot: SNN / dense(batch 1, {args.onchip_mib[0]:g} MiB) = {moon:.3f} (goal <= 0.5)")


def plot(rows: list[dict], path: Path, model: str) -> None:
    """Stacked bars: operations, DRAM, static and inter-chip energy per token for each configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['path']} b={r['batch']}\n{r['onchip']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.9), 4))
    bottom = [0.0] * len(rows)
    for f in ("ops_nj", "dram_nj", "static_nj", "interchip_nj"):
        vals = [(r[f] or 0.0) / 1e3 for r in rows]
        ax.bar(labels, vals, bottom=bottom, label=f.replace("_nj", ""))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("µJ per generated token")
    ax.set_yscale("log")
    ax.set_title(f"{model}: system energy per token")
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
