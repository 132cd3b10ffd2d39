import json

import pytest

from spikemfm.cli import main
from spikemfm.app.demo import DemoConfig, run_demo
from spikemfm.errors import ConfigError


def test_demo_runs_fp32_qann_and_snn(tmp_path, capsys):
    assert main(["demo", "--n-test", "200", "--n-snn", "40", "--timesteps", "1", "8", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "FP32 ANN" in out and "QANN 8-bit" in out and "SNN 8-bit" in out
    assert (tmp_path / "demo.json").is_file()


def test_demo_on_a_timm_classifier_compares_with_its_own_module(tmp_path, capsys):
    argv = ["demo", "--model", "timm:vit_tiny_patch16_224", "--model-arg", "img_size=16", "--model-arg",
            "patch_size=8", "--model-arg", "depth=2", "--model-arg", "embed_dim=32", "--model-arg", "num_heads=2",
            "--model-arg", "num_classes=7",
            "--max-spikes", "graded", "--n-snn", "12", "--batch-size", "6", "--calib-samples", "32",
            "--timesteps", "1", "3", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "random-init" in captured.err
    rows = json.loads((tmp_path / "demo.json").read_text())["rows"]
    assert [r["stage"] for r in rows] == ["FP32 (your module)", "QANN 8-bit", "SNN 8-bit, graded spikes/step",
                                          "SNN 8-bit, graded spikes/step"]
    assert all(r["inputs"] == 12 for r in rows)
    qann, last = rows[1], rows[-1]
    assert 0.9 < qann["cosine_vs_fp32"] <= 1.0 + 1e-9 and 0.0 <= qann["top1_vs_fp32"] <= 1.0
    # graded spikes: every input's accumulated output equals the QANN's, so the SNN rows repeat the QANN's figures
    assert last["exact_vs_qann"] == 1.0 and abs(last["cosine_vs_fp32"] - qann["cosine_vs_fp32"]) < 1e-6


def test_demo_rows_are_consistent():
    rows = run_demo(DemoConfig(n_test=100, n_snn=30, bits=4, max_spikes_per_step=None, timesteps=(1, 2),
                               stream_frames=4), progress=False)
    assert [r["stage"] for r in rows][:3] == ["FP32 ANN", "FP32 ANN (same images as below)", "QANN 4-bit"]
    assert rows[1]["images"] == rows[2]["images"] == 30
    # graded spikes and zero-delay propagation: the SNN equals the QANN from T=1 on
    assert rows[3]["agree_with_qann"] == 1.0 and rows[3]["top1_accuracy"] == rows[2]["top1_accuracy"]
    # the streaming row: every real video frame settles, so its top-1 is the QANN's on that frame
    assert rows[-1]["stage"].startswith("SNN stream") and rows[-1]["images"] == 4
    assert rows[-1]["agree_with_qann"] == 1.0 and rows[-1]["T"].startswith("settle")


def test_a_model_option_the_factory_rejects_is_one_clear_line(capsys):
    argv = ["demo", "--model", "timm:vit_tiny_patch16_224", "--model-arg", "embed_dim=32", "--no-progress"]
    assert main(argv) == 2  # 32 is not divisible by vit_tiny's 3 heads: timm asserts
    err = [line for line in capsys.readouterr().err.splitlines() if "warning: " not in line]
    assert len(err) == 1 and "vit_tiny_patch16_224" in err[0] and "embed_dim=32" in err[0]


def test_demo_config_errors_are_clear(capsys):
    with pytest.raises(ConfigError, match="n_snn"):
        DemoConfig(n_test=10, n_snn=20)
    assert main(["demo", "--n-test", "20000"]) == 2
    assert "error" in capsys.readouterr().err


def test_energy_command_writes_tables_and_png(tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["energy", "--images", "4", "-T", "3", "--profile", "horowitz45", "loihi", "--out", str(out)]) == 0
    assert (out / "energy_summary.json").is_file() and (out / "energy_horowitz45.png").stat().st_size > 1000
    rows = {r["profile"]: r for r in json.loads((out / "energy_summary.json").read_text())["rows"]}
    # Loihi's float units priced as their integer fixed-point work; its dense baselines on the int8 accelerator
    assert rows["loihi"]["complete"] == "yes" and rows["loihi"]["dense_profile"] == "eyeriss_int8"


def test_energy_command_bad_profile_is_one_clear_line(capsys):
    assert main(["energy", "--profile", "no_such_chip"]) == 2
    err = capsys.readouterr().err
    assert "unknown energy profile 'no_such_chip'" in err and err.count("\n") == 1


@pytest.mark.lava
def test_lava_command_checks_a_part_and_writes_its_table(tmp_path, capsys):
    out = tmp_path / "lava"
    assert main(["lava", "--part", "mlp", "--block", "1", "-T", "32", "--inputs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Lava" in printed and "fixed_pt" in printed
    import json

    rows = json.loads((out / "lava_agreement.json").read_text())["rows"]
    assert [r["spike_mismatches"] for r in rows] == [0, 0] and rows[0]["spikes_compared"] > 0


def test_lava_command_bad_block_is_one_clear_line(capsys):
    assert main(["lava", "--block", "9", "--precision", "floating_pt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 4 blocks" in err[0]


def test_convert_reads_a_shared_config_with_tables_of_every_command(tmp_path):
    """Every command's table may sit in one file: the command names come from the parser (an [evaluate] table once
    made `convert --config` fail with "unknown field(s) ['evaluate']")."""
    import json

    from spikemfm.cli.main import all_options, build_parser

    cfg = tmp_path / "shared.toml"
    tables = "".join(f"[{name}]\n" for name in all_options(build_parser()) if name != "convert")
    cfg.write_text('timesteps = 4\n[convert]\nmodel = "tiny-clip-fmnist"\ntower = "text"\nbits = 6\n'
                   'calib_samples = 8\neval_samples = 2\n[evaluate]\ninputs = 20\ndata-set = "sentences"\n' + tables
                   .replace("[evaluate]\n", ""))
    out = tmp_path / "cv"
    assert main(["convert", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["config"]["bits"] == 6


def test_convert_then_simulate_from_a_toml_config(tmp_path, capsys):
    import json

    cfg = tmp_path / "job.toml"
    cfg.write_text('model = "tiny-clip-fmnist"\nbits = 4\nmax_spikes = "graded"\ntimesteps = 4\n'
                   'calib_samples = 64\neval_samples = 4\n')
    out = tmp_path / "cv"
    assert main(["convert", "--config", str(cfg), "--head-ratio", "0.25", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["bits"] == 4 and summary["config"]["head_ratio"] == 0.25  # file + flag override
    assert summary["t_exact"] == 1 and summary["max_rel_error_at_T"] == 0.0  # graded spikes: exact from T=1
    assert summary["params"] < 331776  # pruned
    assert main(["simulate", str(out / "model.snn.pt"), "--inputs", "4", "-T", "4", "--out", str(tmp_path / "sim")]) == 0
    rows = json.loads((tmp_path / "sim" / "simulate.json").read_text())["rows"]
    assert rows[-1]["max_rel_error_vs_qann"] == 0.0


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "tiny-clip-fmnist"\nbitz = 4\n')
    cases = [(["convert", "--model", "nonsense"], "unknown model"),
             (["convert", "--config", str(bad)], "unknown field(s) ['bitz']"),
             (["convert", "--model", "timm:vit_tiny_patch16_224", "--checkpoint", str(tmp_path / "nope.pth")],
              "no such file"),
             (["simulate", str(tmp_path / "nope.snn.pt")], "no such file"),
             (["convert", "--max-spikes", "0"], "max_spikes=0: give a positive integer or 'graded'"),
             (["convert", "--max-spikes", "few"], "max_spikes='few': give a positive integer or 'graded'")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


def test_report_collects_saved_tables_with_their_provenance(tmp_path, capsys):
    from spikemfm.core.io import save_table

    save_table(tmp_path / "res" / "a", "t1", [{"x": 1, "y": 0.5}], {"seed": 3}, "Table one")
    (tmp_path / "res" / "a" / "plot.png").write_bytes(b"\x89PNG")
    assert main(["report", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    assert "## Table one" in text and "| 1 | 0.5 |" in text and '"seed": 3' in text and "](res/a/plot.png)" in text
    save_table(tmp_path / "res" / "c", "mixed_vs_uniform",
               [{"model": "m", "budget_bits": b, "uniform_cosine_to_fp32": 0.1 * b, "mixed_cosine_to_fp32": 0.12 * b}
                for b in (3, 4)], {}, "Mixed")
    assert main(["report", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "R.md")]) == 0
    assert (tmp_path / "report_plots" / "mixed_vs_uniform.png").stat().st_size > 1000
    assert "](report_plots/mixed_vs_uniform.png)" in (tmp_path / "R.md").read_text()
    assert main(["report", "--results", str(tmp_path / "empty")]) == 2


def test_report_draws_the_speed_plots_from_saved_tables(tmp_path):
    from spikemfm.core.io import save_table

    save_table(tmp_path / "res" / "b", "simulation_speed",
               [{"max_spikes_per_step": m, "T": t, "ratio_snn_over_T_x_fp32": r}
                for m, t, r in (("1", 8, 2.9), ("1", 16, 2.6), ("graded", 8, 0.6), ("graded", 16, 0.4))], {}, "Speed")
    save_table(tmp_path / "res" / "c", "baselines",
               [{"method": "FP32 ANN", "T": "-", "sim_s_per_100": 0.03}] +
               [{"method": m, "T": t, "sim_s_per_100": s} for m, t, s in (("ours", 4, 0.3), ("ours", 8, 0.4),
                                                                          ("STA", 4, 0.4), ("STA", 8, 0.6))],
               {}, "Baselines")
    assert main(["report", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    for stem in ("simulation_speed", "baselines"):
        assert (tmp_path / "report_plots" / f"{stem}.png").stat().st_size > 1000
        assert f"](report_plots/{stem}.png)" in text


def _energy_args(tmp_path, text: str, *flags: str):
    from spikemfm.cli.main import all_options, build_parser, subparser
    from spikemfm.cli.config import apply_config

    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    argv = ["energy", "--config", str(cfg), *flags]
    parser = build_parser()
    others = {k: v for k, v in all_options(parser).items() if k != "energy"}
    return apply_config(subparser(parser, "energy"), parser.parse_args(argv), argv, "energy", others)


def test_toml_config_fills_options_and_flags_override_it(tmp_path):
    args = _energy_args(tmp_path, 'timesteps = 4\nbits = 6\n[energy]\nprofile = ["loihi"]\nmax-spikes = 2\n'
                        '[lava]\npart = "mlp"\n', "-T", "2")
    assert args.timesteps == 2  # the flag wins over the file
    assert args.bits == 6 and args.profile == ["loihi"] and args.max_spikes == "2"  # file over defaults
    assert args.images == 100  # untouched default; the [lava] table is not energy's


@pytest.mark.parametrize("text, message", [
    ("nonsense = 1\n", "unknown field(s) ['nonsense'] for 'energy'"),
    ('bits = "eight"\n', "bits='eight' is invalid"),
    ('tower = "audio"\n', "tower='audio'; choose from ['image', 'text']"),
    ('profile = [["loihi"]]\n', "holds a nested value"),
    ('no-progress = 1\n', "no_progress must be true or false"),
    ("bits = [\n", "cannot read it"),
])
def test_toml_config_errors_name_the_file_and_field(tmp_path, text, message):
    with pytest.raises(ConfigError, match="run.toml") as exc:
        _energy_args(tmp_path, text)
    assert message in str(exc.value)


def test_toml_config_error_is_one_line_and_exit_2(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[simulate]\ninputs = -1.5\n")
    assert main(["simulate", "model.snn.pt", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.toml" in err and "inputs" in err


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Saved SNNs written by `spikemfm convert`: MiniLM, and a small timm GAP ViT (model options as flags)."""
    root = tmp_path_factory.mktemp("saved")
    assert main(["convert", "--model", "minilm", "--bits", "8", "--max-spikes", "graded", "-T", "2", "--calib-samples",
                 "32", "--eval-samples", "4", "--out", str(root / "minilm"), "--no-progress"]) == 0
    vit_args = ["img_size=28", "patch_size=7", "depth=2", "embed_dim=32", "num_heads=2", "num_classes=8",
                "class_token=false", 'global_pool="avg"']
    assert main(["convert", "--model", "timm:vit_small_patch16_224", *[a for v in vit_args for a in ("--model-arg", v)],
                 "--bits", "6", "--max-spikes", "4", "-T", "8", "--calib-samples", "64", "--eval-samples", "4",
                 "--out", str(root / "vit"), "--no-progress"]) == 0
    return {"minilm": root / "minilm", "timm": root / "vit"}


def test_convert_summary_compares_with_the_users_module(saved_models):
    import json

    summary = json.loads((saved_models["minilm"] / "summary.json").read_text())
    assert summary["graph_vs_module_rel_l2"] < 1e-5  # the fidelity guard's figure (float64)
    assert summary["qann_vs_module_cosine"] > 0.95 and summary["t_exact"] == 1
    vit = json.loads((saved_models["timm"] / "summary.json").read_text())
    assert vit["graph_vs_module_rel_l2"] < 1e-5 and vit["config"]["model_args"][0] == ["img_size", 28]
    assert vit["input"]["size"] == 28 and vit["input"]["channels"] == 3
    assert vit["weights"].startswith("random-init") and summary["weights"].startswith("pretrained")
    assert "grey repeated to 3 channels" in vit["calibration_data"] and "resized" not in vit["calibration_data"]


@pytest.mark.parametrize("family", ["minilm", "timm"])
def test_energy_of_a_saved_model(saved_models, family, tmp_path, capsys):
    import json

    out = tmp_path / "energy"
    assert main(["energy", str(saved_models[family] / "model.snn.pt"), "--inputs", "2", "-T", "2",
                 "--profile", "horowitz45", "horowitz45_event", "--out", str(out)]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line[:1] in "┃│┏┡└"]
    assert table and max(len(line) for line in table) <= 80
    rows = {r["profile"]: r for r in json.loads((out / "energy_summary.json").read_text())["rows"]}
    row = rows["horowitz45"]
    assert row["complete"] == "yes" and row["snn_nJ"] > 0 and row["int8_nJ"] > 0
    event = rows["horowitz45_event"]  # updates counted for it: only neurons whose input changed or that fire
    assert event["neuron_updates"] == "on_input" and 0 < event["snn_nJ"] < row["snn_nJ"]
    assert event["int8_nJ"] == row["int8_nJ"]


def test_energy_of_a_graded_saved_model_on_loihi2_is_complete(saved_models, tmp_path, capsys):
    out = tmp_path / "energy"
    assert main(["energy", str(saved_models["minilm"] / "model.snn.pt"), "--profile", "loihi2", "loihi", "-T", "4",
                 "--inputs", "2", "--adaptive", "--out", str(out)]) == 0
    rows = {r["profile"]: r for r in json.loads((out / "energy_summary.json").read_text())["rows"]}
    assert all(r["complete"] == "yes" and r["dense_profile"] == "eyeriss_int8" for r in rows.values())
    assert rows["loihi2"]["messages"] == "graded" and rows["loihi2"]["steps"] == 2.0  # graded: quiet at step 2
    assert rows["loihi2"]["snn_nJ"] < rows["loihi"]["snn_nJ"]


def test_asking_more_test_inputs_than_exist_is_refused(saved_models, tmp_path, capsys):
    """Issue 15: `simulate --inputs 5000` on a text tower silently used the few hundred sentences there are."""
    out = tmp_path / "sim"
    assert main(["simulate", str(saved_models["minilm"] / "model.snn.pt"), "--inputs", "5000", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5000 test inputs asked" in err[0] and not out.exists()


def test_default_calibration_and_evaluation_sentences_never_overlap():
    from spikemfm.app.data import DataSource, sentence_split

    calib, _ = sentence_split(DataSource(), "train", 10 ** 6)
    test, _ = sentence_split(DataSource(), "test", 10 ** 6)
    assert calib and test and not set(calib) & set(test)


@pytest.mark.lava
@pytest.mark.parametrize("family", ["minilm", "timm"])
def test_lava_on_a_saved_model(saved_models, family, tmp_path):
    import json

    out = tmp_path / "lava"
    assert main(["lava", str(saved_models[family] / "model.snn.pt"), "--part", "block", "--block", "1", "-T", "4",
                 "--inputs", "1", "--frac-bits", "14", "--out", str(out)]) == 0
    rows = json.loads((out / "lava_agreement.json").read_text())["rows"]
    assert [r["spike_mismatches"] for r in rows] == [0, 0] and rows[0]["spikes_compared"] > 0


def test_commands_take_a_model_name_and_convert_it_first(tmp_path, capsys):
    """energy / simulate with a model name instead of a saved file: converted with the same options as convert."""
    import json

    vit = ["--model-arg", "img_size=28", "--model-arg", "patch_size=14", "--model-arg", "depth=1",
           "--model-arg", "embed_dim=16", "--model-arg", "num_heads=2", "--calib-samples", "16", "--no-progress"]
    assert main(["energy", "timm:vit_tiny_patch16_224", *vit, "--bits", "4", "--max-spikes", "graded",
                 "--inputs", "2", "-T", "2", "--profile", "horowitz45", "--out", str(tmp_path / "e")]) == 0
    row = json.loads((tmp_path / "e" / "energy_summary.json").read_text())["rows"][0]
    assert row["complete"] == "yes" and row["T"] == 2
    assert main(["simulate", "timm:vit_tiny_patch16_224", *vit, "--max-spikes", "graded", "--inputs", "2",
                 "-T", "2", "--out", str(tmp_path / "s")]) == 0
    rows = json.loads((tmp_path / "s" / "simulate.json").read_text())["rows"]
    assert rows[-1]["max_rel_error_vs_qann"] == 0.0  # graded spikes: exact from T=1
    assert main(["simulate", "timm:no_such_model", "--no-progress"]) == 2
    assert "unknown" in capsys.readouterr().err


def test_convert_with_qat_steps_saves_an_exact_snn(tmp_path):
    out = tmp_path / "qat"
    args = ["img_size=16", "patch_size=8", "depth=1", "embed_dim=16", "num_heads=2", "num_classes=4"]
    assert main(["convert", "--model", "timm:vit_tiny_patch16_224", *[a for v in args for a in ("--model-arg", v)],
                 "--bits", "3", "--qat-steps", "3", "--max-spikes", "graded", "-T", "2", "--calib-samples", "16",
                 "--eval-samples", "4", "--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["qat_steps"] == 3 and summary["t_exact"] == 1 and summary["max_rel_error_at_T"] == 0.0


def test_convert_under_an_energy_budget_reports_the_predicted_energy(tmp_path):
    out = tmp_path / "energy_budget"
    args = ["img_size=16", "patch_size=8", "depth=1", "embed_dim=16", "num_heads=2", "num_classes=4"]
    assert main(["convert", "--model", "timm:vit_tiny_patch16_224", *[a for v in args for a in ("--model-arg", v)],
                 "--energy-budget", "1e6", "--energy-profile", "loihi", "--max-spikes", "graded", "-T", "2",
                 "--calib-samples", "16", "--eval-samples", "4", "--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    alloc = summary["allocation"]
    assert alloc["energy_profile"] == "loihi" and alloc["energy_budget_nj"] == 1e6
    assert alloc["predicted_spike_energy_nj"] <= 1e6 and alloc["max_act_bits"] == 8  # ample: the widest bits
    assert summary["t_exact"] == 1 and summary["max_rel_error_at_T"] == 0.0
    # a budget below the all-2-bit energy: one line naming it, nothing written
    bad = tmp_path / "bad"
    assert main(["convert", "--model", "timm:vit_tiny_patch16_224", *[a for v in args for a in ("--model-arg", v)],
                 "--energy-budget", "1e-6", "--calib-samples", "16", "--no-progress", "--out", str(bad)]) == 2
    assert not bad.exists()


def test_stream_a_saved_model_over_real_video(saved_models, tmp_path, capsys):
    out = tmp_path / "stream"
    assert main(["stream", str(saved_models["timm"] / "model.snn.pt"), "--video", "vtest", "--frames", "3",
                 "--profile", "loihi2", "horowitz45", "horowitz45_event", "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "model:" not in line and "wrote" not in line]
    assert max(len(line) for line in lines) <= 80  # paths aside
    summary = json.loads((out / "stream.json").read_text())
    row = summary["rows"][0]
    assert row["exact_share"] == 1.0 and row["settled_share"] == 1.0  # settle: every frame equals the QANN's
    assert row["loihi2:snn_nJ"] > 0 and row["horowitz45:dense_delta_nJ"] > 0
    # event-driven updates: the same run, cheaper by the idle neuron updates (a still frame: nearly all of them)
    assert row["horowitz45_event:snn_nJ"] < row["horowitz45:snn_nJ"]
    assert row["horowitz45_event:still_snn_nJ"] < row["horowitz45:still_snn_nJ"]
    assert summary["config"]["video"] == "vtest" and "normalised" in summary["config"]["input"][-1]
    frames = json.loads((out / "frames.json").read_text())["rows"]
    assert [r["frame"] for r in frames] == [0, 1, 2] and all(r["rel_error"] <= 1e-4 for r in frames)


def test_stream_errors_are_one_line(saved_models, tmp_path, capsys):
    cases = [([str(saved_models["minilm"] / "model.snn.pt")], "text tower"),
             (["--frames", "1"], "at least 2 frames"),
             (["--steps-per-frame", "0"], "steps_per_frame=0"),
             (["--video", str(tmp_path / "none.avi")], "no such video file")]
    for extra, msg in cases:
        model = [] if extra[0].endswith(".pt") else [str(saved_models["timm"] / "model.snn.pt")]
        assert main(["stream", *model, *extra, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
        assert not (tmp_path / "o").exists()


def test_tables_print_one_line_per_row_when_piped(capsys, monkeypatch):
    from spikemfm.cli.common import print_rows

    rows = [{"model": "tiny-clip-fmnist", "bits": 8, "max_spikes": "<=16 spikes/step", "T": t, "accuracy": 0.8842,
             "qann_accuracy": 0.8872, "agree_with_qann": 0.9722, "spikes_per_image": 4.601e6} for t in (8, 16)]
    print_rows("a wide table", rows)  # pytest's stdout is no terminal: a pipe, as in `make demo | cat`
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "a wide table" and len([line for line in lines if line.startswith("| tiny-clip")]) == 2
    assert "| tiny-clip-fmnist | 8 | <=16 spikes/step | 8 | 0.8842 | 0.8872 | 0.9722 | 4.601e+06 |" in lines
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    print_rows("a wide table", rows)  # a terminal: the boxed table, folded to its width
    assert "┃" in capsys.readouterr().out
