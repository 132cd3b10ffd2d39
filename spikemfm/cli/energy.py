"""``spikemfm energy``: energy per inference of a spiking tower against dense baselines, per profile."""
from __future__ import annotations

import argparse

from spikemfm.cli.common import add_source, print_rows, source, CONFIG_HELP, MODEL_HELP
from spikemfm.errors import ConfigError


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Energy per inference of a saved SNN (or the tiny CLIP's spiking tower) vs dense baselines, per profile."""

    from spikemfm.convert import ConvertConfig, QuantConfig, parse_max_spikes
    from spikemfm.data import load_fashion_mnist
    from spikemfm.energy import counts_updates, estimate_energy, load_profile
    from spikemfm.energy.plot import plot_breakdown
    from spikemfm.core.io import check_out_dir, file_sha256, output_set, safe_stem, save_table
    from spikemfm.app.jobs import model_file_for, run_energy_saved
    from spikemfm.models.tiny_clip import load_tiny_clip
    from spikemfm.app.tiny_clip import calibration_images, convert_tiny_clip, prompts
    from spikemfm.snn import simulate
    from spikemfm.energy.system import system_rows
    from spikemfm.models.causal import is_causal_name

    check_out_dir(args.out)
    if args.images < 1 or args.timesteps < 1:
        raise ConfigError(f"--images={args.images}, --timesteps={args.timesteps}: both must be >= 1")
    if not args.profile:
        raise ConfigError("--profile: give at least one energy profile (a name or a TOML path)")
    profiles = [load_profile(p) for p in args.profile]  # fail fast on a bad profile
    described = {}  # the model file the tables describe, by its SHA-256
    systems = system_grid(args)
    saved = read_saved(args.model)  # a model file is read once, whichever path it takes
    if args.model is not None and (is_causal_name(args.model) or (saved is not None and saved[0].graph.causal_lm)):
        return run_lm(args, profiles, systems, None if saved is None else saved[:2])
    if args.model is not None:
        with model_file_for(args.model, source(args), not args.no_progress) as path:
            reports, sim = run_energy_saved(path, profiles, args.images, args.timesteps, args.adaptive, saved)
            described["model_sha256"] = file_sha256(path)
        what = f"{args.model}, T={args.timesteps}"
    else:
        model = load_tiny_clip()
        spikes = parse_max_spikes(args.max_spikes)
        s = convert_tiny_clip(model, QuantConfig(bits=args.bits), ConvertConfig(spikes), calibration_images())
        count = counts_updates(profiles)
        if args.tower == "image":
            x = load_fashion_mnist("test").subset(args.images, seed=0).tensors()[0]
            sim = simulate(s.image, x, args.timesteps, adaptive=args.adaptive, count_updates=count)
        else:
            sim = simulate(s.text, model.text.tokenize(prompts()), args.timesteps, adaptive=args.adaptive,
                           count_updates=count)
        reports = [estimate_energy(sim, p) for p in profiles]
        what = f"tiny-clip {args.tower} tower, {args.bits}-bit, T={args.timesteps}"
    summary = [r.summary() for r in reports]
    # 80 columns: the totals and ratios that answer "does the SNN pay"; every column is in the files
    short = [{"profile": r["profile"], "steps": r["steps"], "SNN nJ": r["snn_nJ"], "SNN/int8": r.get("snn/int8"),
              "SNN/bit-matched": r.get("snn/qann_bitmatched"), "complete": "yes" if r["complete"] == "yes" else "no"}
             for r in summary]
    print_rows(f"energy per inference, {what}", short)
    out = args.out
    cfg = {**{k: v for k, v in vars(args).items() if k != "func"}, **described}
    rows = [r for rep in reports for r in system_rows(sim, rep, systems, args.model or what)] if systems else []
    if rows:
        print_system(f"system energy per inference, {what}", rows)
    with output_set(out) as stage:
        save_table(stage, "energy_summary", summary, cfg, "energy per inference (nJ)")
        if rows:
            save_table(stage, "energy_system", rows, cfg, "system energy per inference (nJ): DRAM, static, chips")
        for r in reports:  # file names from the profile's sanitised name: a name cannot point outside --out
            stem = safe_stem(r.profile)
            save_table(stage, f"energy_layers_{stem}", r.layer_rows(), cfg, f"per-layer energy (pJ), {r.profile}")
            plot_breakdown(r, stage / f"energy_{stem}.png")
    print(f"wrote {out}/energy_summary.{{json,csv,md}}, per-layer tables and PNG breakdowns")
    return 0


def read_saved(model: str | None) -> tuple | None:
    """:func:`~spikemfm.app.jobs.load_saved` of a model file; None for a model name (or no model)."""
    from spikemfm.app.jobs import is_model_file, load_saved

    return load_saved(model) if model is not None and is_model_file(model) else None


def system_grid(args: argparse.Namespace) -> tuple[tuple[int, float | None], ...]:
    """(batch, on-chip bytes or None = the whole model) pairs of --batch × (--onchip-mib + the whole model)."""
    if args.batch and (min(args.batch) < 1 or min(args.onchip_mib) < 0):
        raise ConfigError(f"--batch {args.batch} / --onchip-mib {args.onchip_mib}: batches must be >= 1 and "
                          "buffers >= 0")
    return tuple((b, None if c is None else c * (1 << 20)) for b in args.batch or [] for c in
                 [*args.onchip_mib, None])


def print_system(title: str, rows: list[dict]) -> None:
    """The system rows in 80 columns (every column is in the files)."""
    print_rows(title, [{"path": r["path"], "profile": r["profile"], "batch": r["batch"],
                        "on chip": r["onchip"], "nJ": r["energy_nj"], "chips": r["chips"]} for r in rows])


def run_lm(args: argparse.Namespace, profiles: list, systems: tuple, loaded: tuple | None = None) -> int:
    """A causal LM: energy per generated token (``--inputs`` tokens decoded greedily)."""
    from spikemfm.app.lm_eval import run_lm_energy
    from spikemfm.convert import parse_max_spikes

    summary = run_lm_energy(args.model, profiles, args.images, args.out, args.bits, parse_max_spikes(args.max_spikes),
                            progress=not args.no_progress, systems=systems, loaded=loaded)
    if systems:
        print_system(f"system energy per generated token, {args.model}", summary)
    else:
        print_rows(f"energy per generated token, {args.model}",
                   [{"profile": r["profile"], "steps": r["steps"], "SNN nJ": r["snn_nJ"], "int8 nJ": r["int8_nJ"],
                     "SNN/int8": r.get("snn/int8"), "complete": r["complete"]} for r in summary])
    print(f"wrote {args.out}/energy_summary.{{json,csv,md}} and energy_tokens.{{json,csv,md}}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm energy`` and its options."""
    en = sub.add_parser("energy", help="energy of a saved SNN (or the tiny CLIP's) vs dense baselines per "
                        "hardware profile")
    en.add_argument("model", nargs="?", help=MODEL_HELP + "; without it the tiny CLIP's tower (--tower) is "
                    "converted with its prompts")
    en.add_argument("--profile", nargs="+", default=["horowitz45", "standard_formula", "loihi", "truenorth",
                                                     "eyeriss_int8"], help="profile names or TOML paths")
    add_source(en, spikes_default="4")
    en.add_argument("--timesteps", "-T", type=int, default=8)
    en.add_argument("--images", "--inputs", dest="images", type=int, default=100,
                    help="real test inputs (images or sentences) simulated")
    en.add_argument("--adaptive", action="store_true", help="adaptive T: each input stops at its first step in "
                    "which no neuron moved (its output is then exactly the QANN's); -T is the cap")
    en.add_argument("--batch", type=int, nargs="+", help="system energy at these batch sizes: DRAM traffic, chips, "
                    "static power, latency (spikemfm.energy.system); per generated token for causal LMs")
    en.add_argument("--onchip-mib", type=float, nargs="+", default=[1.0, 8.0],
                    help="with --batch: dense on-chip buffer sizes (MiB), plus the whole model")
    en.add_argument("--out", default="results/energy_cli")
    en.add_argument("--config", help=CONFIG_HELP.format("energy"))
    en.set_defaults(func=run)
