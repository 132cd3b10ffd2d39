"""Energy per inference: FP32, int8 and bit-matched QANN dense paths vs the SNN at several T, per profile.

Both towers of the bundled tiny CLIP (image tower on real Fashion-MNIST test images, MiniLM text tower
on the class prompts) at 8 bits, at fixed T and adaptive T (capped at the largest T). Spike counts come from ``spikemfm.simulate``; every profile in
``spikemfm/hardware/profiles`` prices them. Writes results/energy/{energy.json,csv,md} and one
breakdown PNG per tower (Horowitz 45 nm, largest T).

Run: ``python experiments/energy_table.py``
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tqdm.auto import tqdm

from spikemfm.convert import ConvertConfig, QuantConfig, parse_max_spikes
from spikemfm.data import load_fashion_mnist
from spikemfm.energy import available_profiles, counts_updates, estimate_energy
from spikemfm.energy.plot import plot_breakdown
from spikemfm.core.io import save_table
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.app.tiny_clip import calibration_images, convert_tiny_clip, prompts
from spikemfm.snn import simulate
from spikemfm.core.provenance import add_results_args, results_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--max-spikes", nargs="+", default=["1", "4"])
    p.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--out", default="results/energy")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    model = load_tiny_clip()
    x = load_fashion_mnist("test").subset(args.images, seed=0).tensors()[0]
    tok = model.text.tokenize(prompts())
    rows, last = [], {}
    for ms in tqdm(args.max_spikes, desc="spike bound"):
        spikes = parse_max_spikes(ms)
        s = convert_tiny_clip(model, QuantConfig(bits=args.bits), ConvertConfig(spikes), calibration_images())
        for tower, snn, inputs in (("image", s.image, x), ("text", s.text, tok)):
            # fixed T, then adaptive T capped at the largest T (each input stops at its first quiet step)
            for t, adaptive in [(t, False) for t in args.timesteps] + [(max(args.timesteps), True)]:
                sim = simulate(snn, inputs, t, adaptive=adaptive, count_updates=counts_updates(available_profiles()))
                for prof in available_profiles():
                    rep = estimate_energy(sim, prof)
                    rows.append({"tower": tower, "bits": args.bits, "max_spikes_per_step": ms,
                                 "run": "adaptive" if adaptive else "fixed", **rep.summary()})
                    if prof == "horowitz45" and not adaptive:
                        last[(tower, ms)] = rep
    out = Path(args.out)
    md = save_table(out, "energy", rows, vars(args),
                    f"Energy per inference (nJ), tiny-clip-fmnist, {args.bits}-bit, dense baselines vs SNN")
    for (tower, ms), rep in last.items():
        plot_breakdown(rep, out / f"breakdown_{tower}_B{ms}.png",
                       f"tiny-clip {tower} tower, horowitz45, T={rep.timesteps}, ≤{ms} spikes/step")
    print(md)


if __name__ == "__main__":
    main()
