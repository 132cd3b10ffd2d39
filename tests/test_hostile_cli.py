"""Issue 15: bad input, crafted files and faults at the command line.

Every refusal is exit code 2, one line on stderr naming the file or field, no traceback, and nothing written.
"""
import json
import os
import pickle
import zipfile

import pytest
import torch

from spikemfm.cli import main

TINY_VIT = ["img_size=16", "patch_size=8", "depth=1", "embed_dim=16", "num_heads=2", "num_classes=4"]


def _tiny_vit_flags() -> list[str]:
    return [a for v in TINY_VIT for a in ("--model-arg", v)]


def _tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _refused(argv, capsys, root, *fragments) -> str:
    """Runs the CLI; asserts exit 2, one stderr line holding every fragment, and no file changed under root."""
    before = _tree(root)
    assert main(argv) == 2, argv
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "warning: " not in line]
    assert len(err) == 1, err
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])
    assert "Traceback" not in err[0]
    assert _tree(root) == before, "a refused command wrote files"
    assert not list(root.rglob(".spikemfm-staging*")), "staging left behind"
    return err[0]


@pytest.mark.parametrize("text, fragments", [
    ("model = 5\n", ["job.toml", "ConvertJob.model=5", "a string"]),
    ("calib_samples = 64.5\n", ["job.toml", "calib_samples=64.5", "an integer"]),
    ("checkpoint = 5\n", ["job.toml", "checkpoint=5"]),
    ('budget = "5"\n', ["job.toml", "budget='5'"]),
    ('timesteps = "32"\n', ["job.toml", "timesteps='32'"]),
    ("budget = nan\n", ["job.toml", "budget=nan", "finite"]),
    ("budget = inf\n", ["job.toml", "budget=inf", "finite"]),
    ("bits = true\n", ["job.toml", "bits=True"]),
    ("[energy]\nprofile = 1\n[convert]\nbitz = 3\n", ["job.toml", "unknown field(s) ['bitz']"]),
])
def test_convert_toml_type_errors_name_file_and_field(tmp_path, capsys, text, fragments):
    cfg = tmp_path / "job.toml"
    cfg.write_text(text)
    _refused(["convert", "--config", str(cfg), "--out", str(tmp_path / "out")], capsys, tmp_path, *fragments)


def test_binary_toml_names_the_file(tmp_path, capsys):
    cfg = tmp_path / "job.toml"
    cfg.write_bytes(b"\xff\xfe\x00model = 1\x80")
    _refused(["convert", "--config", str(cfg)], capsys, tmp_path, "job.toml", "cannot read it")
    _refused(["energy", "--config", str(cfg)], capsys, tmp_path, "job.toml", "cannot read it")


def test_the_readme_shared_config_is_taken_by_every_command(tmp_path):
    from spikemfm.cli.main import all_options, build_parser, subparser
    from spikemfm.cli.config import apply_config
    from spikemfm.app.jobs import job_from_toml

    cfg = tmp_path / "runs.toml"
    cfg.write_text('timesteps = 16\n[energy]\nprofile = ["horowitz45", "loihi"]\nmax-spikes = "graded"\n'
                   '[lava]\npart = "mlp"\n[convert]\nbits = 6\n')
    parser = build_parser()
    every = all_options(parser)
    got = {}
    for cmd in ("demo", "energy", "simulate", "lava", "report"):
        argv = [cmd, *(["m.pt"] if cmd == "simulate" else []), "--config", str(cfg)]
        got[cmd] = apply_config(subparser(parser, cmd), parser.parse_args(argv), argv, cmd,
                                {k: v for k, v in every.items() if k != cmd})
    assert got["demo"].timesteps == [16] and got["energy"].timesteps == 16 and got["lava"].part == "mlp"
    assert got["energy"].profile == ["horowitz45", "loihi"] and got["energy"].max_spikes == "graded"
    job = job_from_toml(cfg, {}, set().union(*every.values()), commands=tuple(every))
    assert job.timesteps == 16 and job.bits == 6


@pytest.mark.parametrize("command", ["convert", "simulate", "demo", "energy", "lava"])
@pytest.mark.parametrize("where", ["proc", "file", "under_file"])
def test_a_bad_out_is_refused_before_any_work(tmp_path, capsys, command, where):
    existing = tmp_path / "a_file"
    existing.write_text("keep")
    out = {"proc": "/proc/spikemfm-x", "file": str(existing), "under_file": str(existing / "sub")}[where]
    argv = [command, *(["model.snn.pt"] if command == "simulate" else []), "--out", out]
    line = _refused(argv, capsys, tmp_path, out)
    assert "model.snn.pt" not in line  # the --out check comes first: the missing model was not even looked at


def test_report_out_that_is_a_folder_is_refused_before_plotting(tmp_path, capsys):
    from spikemfm.core.io import save_table

    save_table(tmp_path / "res", "mixed_vs_uniform", [{"model": "m", "budget_bits": 4, "uniform_cosine_to_fp32": 0.9,
                                                       "mixed_cosine_to_fp32": 0.95}], {}, "Mixed")
    (tmp_path / "dir").mkdir()
    _refused(["report", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "dir")], capsys, tmp_path,
             "is a folder")


@pytest.mark.parametrize("argv, fragment", [
    (["demo", "--batch-size", "-5"], "--batch-size=-5"),
    (["demo", "--batch-size", "0", "--model", "minilm"], "--batch-size=0"),
    (["lava", "-T", "0"], "--timesteps=0"),
    (["lava", "--inputs", "0"], "--inputs=0"),
    (["lava", "--timeout", "-1"], "--timeout=-1"),
    (["lava", "--timeout", "nan"], "--timeout=nan"),
    (["lava", "--block", "99", "--precision", "floating_pt"], "has 4 blocks"),
    (["simulate", "m.snn.pt", "--inputs", "0"], "--inputs=0"),
])
def test_bad_values_are_refused_up_front(tmp_path, capsys, argv, fragment):
    _refused([*argv, "--out", str(tmp_path / "out")], capsys, tmp_path, fragment)


@pytest.mark.parametrize("terms, fragment", [
    ("synop = 5\n", "[terms.synop]: must be a table"),
    ('[synop]\nvalue = nan\nunit = "pJ"\nsource = "s"\nevidence = "assumed"\nscope = "per-term"\n', "finite"),
    ('[synop]\nvalue = true\nunit = "pJ"\nsource = "s"\nevidence = "assumed"\nscope = "per-term"\n', "finite"),
])
def test_bad_energy_profiles_are_one_line(tmp_path, capsys, terms, fragment):
    prof = tmp_path / "chip.toml"
    head = '[profile]\nname = "chip"\nscope = "per-term"\n'
    prof.write_text(head + ("[terms]\n" + terms if not terms.startswith("[") else
                            terms.replace("[synop]", "[terms.synop]")))
    _refused(["energy", "--profile", str(prof), "--out", str(tmp_path / "out")], capsys, tmp_path, "chip.toml",
             fragment)


def test_empty_profile_list_in_a_config_is_refused(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("profile = []\n")
    _refused(["energy", "--config", str(cfg), "--out", str(tmp_path / "out")], capsys, tmp_path, "profile")


def test_a_profile_name_cannot_write_outside_out(tmp_path, capsys):
    src = (__import__("spikemfm.hardware.profiles", fromlist=["x"]).PROFILE_DIR / "loihi.toml").read_text()
    prof = tmp_path / "evil.toml"
    prof.write_text(src.replace('name = "loihi"', 'name = "x/../../../ESCAPED_loihi"', 1))
    out = tmp_path / "a" / "b" / "out"
    assert main(["energy", "--profile", str(prof), "--images", "2", "-T", "1", "--out", str(out)]) == 0
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(str(p).startswith(("a/b/out/", "evil.toml")) for p in written), written
    assert (out / "energy_x_ESCAPED_loihi.png").is_file()


# --- checkpoints: every bad weights file is one line naming it ---------------------------------------------


class _Evil:
    """A pickle that would create a marker file if it were ever unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(path, marker) -> None:
    torch.save({"state_dict": _Evil(marker)}, path)


def _bad_checkpoints(tmp_path):
    marker = tmp_path / "PWNED"
    files = {"empty.pth": b"", "garbage.safetensors": b"\x00garbage" * 50, "five.safetensors": b"12345"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    import timm
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=8, depth=1,
                                embed_dim=16, num_heads=2, num_classes=4).state_dict(), str(good))
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _evil_pickle(tmp_path / "evil.pth", marker)
    return marker


@pytest.mark.parametrize("name", ["empty.pth", "garbage.safetensors", "five.safetensors", "truncated.safetensors",
                                  "evil.pth"])
def test_bad_timm_checkpoints_are_one_line(tmp_path, capsys, name):
    marker = _bad_checkpoints(tmp_path)
    _refused(["convert", "--model", "timm:vit_tiny_patch16_224", *_tiny_vit_flags(), "--checkpoint",
              str(tmp_path / name), "--out", str(tmp_path / "out")], capsys, tmp_path, name)
    assert not marker.exists()  # the malicious pickle ran nothing


def test_a_wrong_architecture_checkpoint_is_one_short_line(tmp_path, capsys):
    import timm

    other = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=8, depth=2,
                              embed_dim=16, num_heads=2, num_classes=4)
    torch.save(other.state_dict(), tmp_path / "deeper.pth")
    line = _refused(["convert", "--model", "timm:vit_tiny_patch16_224", *_tiny_vit_flags(), "--checkpoint",
                     str(tmp_path / "deeper.pth"), "--out", str(tmp_path / "out")], capsys, tmp_path, "deeper.pth")
    assert len(line) < 600


@pytest.mark.parametrize("kind", ["empty", "evil"])
def test_bad_open_clip_checkpoints_are_one_line(tmp_path, capsys, kind):
    marker = tmp_path / "PWNED"
    ckpt = tmp_path / f"{kind}.pt"
    ckpt.write_bytes(b"") if kind == "empty" else _evil_pickle(ckpt, marker)
    _refused(["convert", "--model", "open_clip:ViT-B-32", "--checkpoint", str(ckpt), "--out",
              str(tmp_path / "out")], capsys, tmp_path, ckpt.name)
    assert not marker.exists()


def test_an_hf_folder_with_a_malicious_weights_file_is_one_line(tmp_path, capsys):
    from spikemfm.models.text import minilm_path

    folder = tmp_path / "bert"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm_path() / name).is_file():
            (folder / name).write_bytes((minilm_path() / name).read_bytes())
    marker = tmp_path / "PWNED"
    _evil_pickle(folder / "pytorch_model.bin", marker)
    _refused(["convert", "--model", f"hf:{folder}", "--out", str(tmp_path / "out")], capsys, tmp_path, "bert")
    assert not marker.exists()


# --- output sets ----------------------------------------------------------------------------------------------


def _convert_argv(out, bits):
    return ["convert", "--model", "timm:vit_tiny_patch16_224", *_tiny_vit_flags(), "--bits", str(bits),
            "-T", "2", "--calib-samples", "8", "--eval-samples", "2", "--no-progress", "--out", str(out)]


def test_disk_full_while_saving_leaves_the_previous_set_and_says_so(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(_convert_argv(out, 8)) == 0
    old = _tree(out)
    capsys.readouterr()

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed")
    monkeypatch.setattr(torch, "save", full)
    _refused(_convert_argv(out, 4), capsys, tmp_path, "disk may be full", str(out))
    assert _tree(out) == old and json.loads((out / "summary.json").read_text())["config"]["bits"] == 8


def test_leftovers_of_a_killed_writer_are_removed_by_the_next(tmp_path):
    from spikemfm.core.io import output_set, write_json

    dead = 2 ** 30  # above any pid_max: no such process
    (tmp_path / f".model.snn.pt.{dead}.tmpabc123").write_bytes(b"partial")
    (tmp_path / f".spikemfm-staging.{dead}-xyz").mkdir()
    (tmp_path / f".summary.json.{os.getpid()}.tmpmine").write_bytes(b"a live writer's")
    with output_set(tmp_path / "out") as stage:
        write_json(stage / "summary.json", {"ok": 1})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f".summary.json.{os.getpid()}.tmpmine", "out"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == {"ok": 1}


def test_a_failure_inside_an_output_set_writes_nothing(tmp_path):
    from spikemfm.core.io import output_set, write_json

    out = tmp_path / "out"
    with pytest.raises(KeyError):
        with output_set(out) as stage:
            write_json(stage / "model.json", {"new": 1})
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_non_utf8_name_still_writes_the_whole_table(tmp_path):
    from spikemfm.core.io import save_table

    name = os.fsdecode(b"model-\xff.snn.pt")  # a surrogate escape, as Python reads a non-UTF-8 path
    save_table(tmp_path, "simulate", [{"T": 1, "file": name}], {"model_file": name}, f"simulate {name}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["simulate.csv", "simulate.json", "simulate.md"]
    assert "\\udcff" in (tmp_path / "simulate.md").read_text()


def test_report_on_malformed_tables_is_one_line_and_keeps_the_old_report(tmp_path, capsys):
    from spikemfm.core.io import save_table

    res = tmp_path / "res"
    save_table(res / "a", "mixed_vs_uniform", [{"model": "m", "budget_bits": 4, "uniform_cosine_to_fp32": 0.9,
                                                "mixed_cosine_to_fp32": 0.95}], {}, "Mixed")
    assert main(["report", "--results", str(res), "--out", str(tmp_path / "R.md")]) == 0
    # a table whose plot cannot be drawn, sorted after the first: the new plot of the first must not land
    save_table(res / "b", "simulation_speed", [{"T": 4}], {}, "Speed")
    save_table(res / "a", "mixed_vs_uniform", [{"model": "m2", "budget_bits": 5, "uniform_cosine_to_fp32": 0.5,
                                                "mixed_cosine_to_fp32": 0.6}], {}, "Mixed")
    _refused(["report", "--results", str(res), "--out", str(tmp_path / "R.md")], capsys, tmp_path / "report_plots",
             "simulation_speed", "cannot be plotted")
    (res / "b" / "simulation_speed.json").write_text(json.dumps({"title": "t", "rows": [1, 2]}))
    _refused(["report", "--results", str(res), "--out", str(tmp_path / "R.md")], capsys, tmp_path / "report_plots",
             "simulation_speed.json", "not a results table")
    (res / "b" / "simulation_speed.json").write_bytes(b"\xff\xfe{")
    _refused(["report", "--results", str(res), "--out", str(tmp_path / "R.md")], capsys, tmp_path / "report_plots",
             "simulation_speed.json")


def test_a_pickled_zip_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys):
    """A zip with a pickle inside but no tensors (torch's container format, wrong content)."""
    path = tmp_path / "odd.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": 1}))
    _refused(["convert", "--model", "timm:vit_tiny_patch16_224", *_tiny_vit_flags(), "--checkpoint", str(path),
              "--out", str(tmp_path / "out")], capsys, tmp_path, "odd.pth")
