"""T_exact (first step from which SNN output ≡ QANN output) versus depth, bits and spikes per step.

Random-weight timm ViTs (28×28 input, patch 7, width 32, 2 heads) of depth 1…8, calibrated and
evaluated on real Fashion-MNIST images. Prints a table and writes results/benchmarks/t_exact_vs_depth.*.

Run: ``python benchmarks/t_exact_vs_depth.py``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm.auto import tqdm

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.data import load_fashion_mnist
from spikemfm.core.io import save_table
from spikemfm.snn import simulate
from spikemfm.core.provenance import add_results_args, results_run


def vit(depth: int) -> torch.nn.Module:
    torch.manual_seed(depth)
    return spikemfm.load("timm:vit_tiny_patch16_224", img_size=28, patch_size=7, in_chans=1, embed_dim=32,
                         num_heads=2, depth=depth, mlp_ratio=2.0, num_classes=10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4, 6])
    p.add_argument("--bits", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--max-spikes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--out", default="results/benchmarks")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    split = load_fashion_mnist("test").subset(args.images, seed=0)
    x = split.tensors()[0]
    calib = [load_fashion_mnist("train").subset(128, seed=1).tensors()[0]]
    rows = []
    jobs = [(d, b, s) for d in args.depths for b in args.bits for s in args.max_spikes]
    for depth, bits, spikes in tqdm(jobs, desc="T_exact"):
        qann = quantize(vit(depth), QuantConfig(bits=bits), calib)
        ref = qann(x)
        steps = 2 * depth * (2 ** (bits - 1)) // spikes + 16  # budget; None below means not exact within it
        res = simulate(convert(qann, ConvertConfig(max_spikes_per_step=spikes)), x, steps)
        rows.append({"depth": depth, "bits": bits, "max_spikes_per_step": spikes,
                     "neuron_layers_in_chain": 7 * depth + 1, "T_exact": res.t_exact(ref) or f"> {steps}",
                     "simulated_T": steps, "spikes_per_image": round(res.total_spikes() / len(x), 1)})
    md = save_table(Path(args.out), "t_exact_vs_depth", rows, vars(args),
                    "T_exact vs depth (random ViT, real Fashion-MNIST inputs, SNN ≡ QANN within 1e-4)")
    print(md)


if __name__ == "__main__":
    main()
