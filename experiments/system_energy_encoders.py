"""System energy per inference of the encoders: the saved verdicts rerun with DRAM, batch, chips and static power.

Towers: the tiny CLIP's image tower (bundled weights), all-MiniLM-L6-v2 (bundled; it is the tiny CLIP's text
tower), ViT-B/16 (timm,
random-init: no pretrained weights can be fetched here; the energy depends on its shapes and the activity real
Fashion-MNIST images cause). Each is converted at 8 bits with graded spikes (calibration on training data), run
on ``--inputs`` real test inputs with adaptive T (each input stops at its first quiet step, so its output equals
the QANN's), and priced by :mod:`spikemfm.energy.system` on ``--profile`` (Loihi 2 chips against its dense int8
reference) for batch ∈ ``--batch`` and on-chip buffers of ``--onchip-mib`` plus the whole model. Writes
results/system_energy_encoders/{json,csv,md}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from spikemfm.app.jobs import model_file_for, run_energy_saved
from spikemfm.core.io import output_set, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.energy import load_profile
from spikemfm.energy.system import system_rows

MIB = 1 << 20
# the tiny CLIP's text tower is all-MiniLM-L6-v2 itself (frozen, 22.7 M parameters): one row serves both
TOWERS = {"tiny-clip image": ("tiny-clip-fmnist", "image"), "MiniLM (= tiny-clip text)": ("minilm", "image"),
          "ViT-B/16 (random-init)": ("timm:vit_base_patch16_224", "image")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--towers", nargs="+", default=list(TOWERS), choices=list(TOWERS))
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--inputs", type=int, default=8)
    ap.add_argument("--timesteps", type=int, default=16, help="the cap of the adaptive runs")
    ap.add_argument("--calib-samples", type=int, default=32)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--onchip-mib", type=float, nargs="+", default=[1.0, 8.0])
    ap.add_argument("--out", default="results/system_energy_encoders")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    profile = load_profile(args.profile)
    systems = tuple((b, c) for b in args.batch for c in [*(m * MIB for m in args.onchip_mib), None])
    rows = []
    for label in args.towers:
        name, tower = TOWERS[label]
        source = {"tower": tower, "bits": 8, "max_spikes": "graded", "calib_samples": args.calib_samples}
        print(f"{label}: converting and simulating {args.inputs} inputs", flush=True)
        with model_file_for(name, source, progress=True) as path:
            (rep,), sim = run_energy_saved(path, [profile], args.inputs, args.timesteps, adaptive=True)
        for r in system_rows(sim, rep, systems, label):
            rows.append({**r, "steps": round(rep.steps, 2)})
            print(f"  {r['path']:5} b={r['batch']:<3} {r['onchip']:17} {r['energy_nj']} nJ", flush=True)
    with output_set(Path(args.out)) as stage:
        save_table(stage, "system_energy_encoders", rows, vars(args), "encoders: system energy per inference (nJ), "
                   f"{args.profile} SNN (graded, adaptive T) vs dense int8, per batch and on-chip buffer")
    print(f"wrote {args.out}/system_energy_encoders.{{json,csv,md}}")


if __name__ == "__main__":
    main()
