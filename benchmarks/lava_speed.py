"""Lava simulation speed and agreement for the tiny CLIP, next to the PyTorch SNN in the same run.

For each (part, batch, precision): Lava's ``Loihi2SimCfg`` CPU simulation of the part (one OS process
per Lava process) vs the PyTorch reference of the same part and batch (the float SNN for
``floating_pt``, the integer reference for ``fixed_pt``), with their spike-for-spike agreement.
Steps per second exclude Lava's compile/start-up (reported separately). Real Fashion-MNIST test
images, 8-bit, <=16 spikes per neuron per step. Writes results/benchmarks/lava_speed.*.

Run: ``python benchmarks/lava_speed.py``
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tqdm.auto import tqdm

from spikemfm.core.io import save_table
from spikemfm.neuromorphic.isolate import run_isolated
from spikemfm.app.jobs import agreement_job
from spikemfm.core.provenance import add_results_args, results_run

COLUMNS = {"part": "part", "block": "block", "batch": "batch", "precision": "precision", "timesteps": "T",
           "processes": "lava_processes", "spikes_compared": "spikes_compared", "spike_mismatches": "spike_mismatches",
           "max_output_diff": "max_output_diff", "fixed_vs_float": "fixed_vs_float_rel",
           "lava_startup_s": "lava_startup_s", "lava_steps_per_s": "lava_steps_per_s",
           "torch_steps_per_s": "pytorch_steps_per_s"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--timesteps", type=int, default=32)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--parts", nargs="+", default=["block:0", "tower:0"], help="kind:block pairs")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--out", default="results/benchmarks")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    parts = [(s.split(":")[0], int(s.split(":")[1])) for s in args.parts]
    rows = []
    for batch in tqdm(args.batches, desc="batch sizes"):
        got = run_isolated(agreement_job, dict(model="tiny-clip-image", parts=parts,
                                               precisions=["floating_pt", "fixed_pt"], timesteps=args.timesteps,
                                               n_inputs=batch), timeout_s=args.timeout)
        rows += [{new: r[old] for old, new in COLUMNS.items()} for r in got]
    for r in rows:
        r["fixed_vs_float_rel"] = "" if r["fixed_vs_float_rel"] is None else round(r["fixed_vs_float_rel"], 5)
        r["lava_over_pytorch_time"] = round(r["pytorch_steps_per_s"] / r["lava_steps_per_s"], 2)
        for k in ("lava_startup_s", "lava_steps_per_s", "pytorch_steps_per_s"):
            r[k] = round(r[k], 2)
    md = save_table(Path(args.out), "lava_speed", rows, vars(args),
                    f"Lava (Loihi2SimCfg, CPU) vs PyTorch SNN: tiny-clip image tower, T={args.timesteps}, "
                    "8-bit, <=16 spikes/step, real Fashion-MNIST test images")
    print(md)


if __name__ == "__main__":
    main()
