"""``spikemfm report``: one markdown report from every saved results table (JSON) and plot (PNG).

Each table written by :func:`spikemfm.core.io.save_table` is a JSON file holding its title, rows, config
git commit and command; the report lists them by folder, with the commit, the command and the config that produced
each, so every number in it can be traced back to a script run, and flags the folders whose code changed since.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from spikemfm.errors import ConfigError
from spikemfm.core.io import atomic_write_text, check_out_file, markdown_table, output_set
from spikemfm.core.provenance import staleness


def _tables(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(root.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # staging folders and temp files of writers at work
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"report: {path} is not readable JSON ({exc})") from exc
        if isinstance(data, dict) and "rows" in data and "title" in data:
            rows = data["rows"]
            if not isinstance(data["title"], str) or not isinstance(rows, list) or \
                    not all(isinstance(r, dict) for r in rows):
                raise ConfigError(f"report: {path} is not a results table (title must be a string and rows a list "
                                  "of objects); fix or remove it")
            out.append((path, data))
    return out


def _plot_mixed(rows: list[dict], ax: Any) -> None:
    for metric in ("zero_shot_top1", "cosine_to_fp32"):
        sel = [r for r in rows if r.get(f"uniform_{metric}") not in (None, "")]
        for kind, style in (("uniform", "--"), ("mixed", "-")):
            if sel:
                ax.plot([r["budget_bits"] for r in sel], [r[f"{kind}_{metric}"] for r in sel], style, marker="o",
                        label=f"{sel[0]['model']} {kind} ({metric})")
    ax.set_xlabel("average bits (weights and activations)")
    ax.set_ylabel("accuracy / cosine")


def _plot_lava(rows: list[dict], ax: Any) -> None:
    labels = [f"{r['part']} b{r['batch']} {r['precision'][:5]}" for r in rows]
    pos = range(len(rows))
    ax.bar([p - 0.2 for p in pos], [r["lava_steps_per_s"] for r in rows], 0.4, label="Lava (Loihi2SimCfg, CPU)")
    ax.bar([p + 0.2 for p in pos], [r["pytorch_steps_per_s"] for r in rows], 0.4, label="PyTorch SNN")
    ax.set_xticks(list(pos), labels, rotation=45, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("steps per second")


def _plot_sim_speed(rows: list[dict], ax: Any) -> None:
    def key(r: dict) -> tuple[str, str, str]:  # tables written before precision/runtime columns lack them
        return str(r["max_spikes_per_step"]), r.get("precision", "float64"), r.get("runtime", "step")

    for mode, precision, runtime in dict.fromkeys(key(r) for r in rows):
        sel = [r for r in rows if key(r) == (mode, precision, runtime)]
        name = f"<= {mode} spikes/step" if mode != "graded" else "graded spikes"
        ax.plot([r["T"] for r in sel], [r["ratio_snn_over_T_x_fp32"] for r in sel], marker="o",
                ls="-" if precision == "float32" else ":", alpha=1.0 if runtime == "step" else 0.5,
                label=f"{name}, {precision}" + (", time-batched" if runtime == "time" else ""))
    ax.axhline(1.0, ls="--", lw=0.8, color="gray", label="target: T FP32 forwards")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("T")
    ax.set_ylabel("SNN time / (T × FP32 forward)")


def _plot_baseline_speed(rows: list[dict], ax: Any) -> None:
    for method in dict.fromkeys(r["method"] for r in rows if r["T"] != "-"):
        sel = [r for r in rows if r["method"] == method]
        ax.plot([r["T"] for r in sel], [r["sim_s_per_100"] for r in sel], marker="o", label=method)
    for r in rows:
        if r["method"] == "FP32 ANN":
            ts = sorted({x["T"] for x in rows if x["T"] != "-"})
            ax.plot(ts, [t * r["sim_s_per_100"] for t in ts], "k--", lw=0.8, label="T FP32 forwards")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("T")
    ax.set_ylabel("seconds per 100 images")


# plots drawn from saved tables, by table file stem (the stem arrives as a string: a registry fits)
PLOTS = {"mixed_vs_uniform": _plot_mixed, "lava_speed": _plot_lava, "simulation_speed": _plot_sim_speed,
         "baselines": _plot_baseline_speed}


def draw_plot(stem: str, data: dict[str, Any], png: Path) -> None:
    """Draws the registered plot of table ``stem`` (``data``: its saved JSON, title and rows) to ``png``.

    Raises:
        ConfigError: the rows lack the columns the plot needs (a malformed table).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikemfm.core.io import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.6))
    try:
        PLOTS[stem](data["rows"], ax)
        ax.set_title(data["title"], fontsize=8)
        ax.legend(fontsize=6)
        save_figure(fig, png)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"report: table {stem!r} cannot be plotted ({type(exc).__name__}: {exc}); its rows lack "
                          "the columns the plot needs") from None
    finally:
        plt.close(fig)


def manifest_rows(root: Path, tables: list[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per results folder and run (command + commit) in it: its tables, the command that regenerates them,
    the commit they were made at, and whether the code they depend on changed since
    (:func:`spikemfm.core.provenance.staleness`)."""
    runs: dict[tuple[Path, str, str], list[str]] = {}
    for path, data in tables:
        key = (path.parent, str(data.get("command", "")), str(data.get("git_commit", "")))
        runs.setdefault(key, []).append(path.stem)
    checked: dict[tuple[str, str], str] = {}
    rows = []
    for (folder, cmd, commit), stems in sorted(runs.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])):
        rows.append({"folder": str(folder.relative_to(root)) or ".", "tables": " ".join(sorted(stems)),
                     "command": cmd or "not recorded", "git_commit": commit or "unknown",
                     "status": checked.setdefault((commit, cmd), staleness(commit, cmd))})
    return rows


def _run_key(rel: Path, data: dict[str, Any]) -> tuple[str, str, str]:
    """(folder, command, commit) of a table, as :func:`manifest_rows` names its run."""
    return str(rel.parent) or ".", str(data.get("command") or "not recorded"), str(data.get("git_commit") or "unknown")


def build_report(root: str | Path, out: str | Path) -> Path:
    """Writes ``out`` (markdown) with every table and PNG under ``root``, and ``MANIFEST.{md,json}`` beside it
    (each results folder with its command, commit and status: current, or older than the code it depends on);
    returns the report's path.

    The report, the manifest and the plots the report draws (``report_plots/`` beside it) are written as one set:
    a failure leaves the previous ones as they were.
    """
    root, out = Path(root), check_out_file(out)
    if not root.is_dir():
        raise ConfigError(f"report: results folder {root} does not exist; run the experiments first")
    tables = _tables(root)
    if not tables:
        raise ConfigError(f"report: no saved tables (JSON with title and rows) under {root}")
    manifest = manifest_rows(root, tables)
    stale = [r for r in manifest if r["status"] != "current"]
    lines = [f"# spikemfm results report\n\nFrom `{root}`: {len(tables)} tables from {len(manifest)} runs; "
             f"{len(stale)} runs are not current (see `MANIFEST.md`: no command recorded, uncommitted code, or "
             "code changed since).\n"]
    status = {(r["folder"], r["command"], r["git_commit"]): r["status"] for r in manifest}  # by _run_key
    shown: set[Path] = set()
    with output_set(out.parent) as stage:
        for path, data in tables:
            rel = path.relative_to(root)
            lines.append(f"## {data['title']}\n\n`{rel}` · commit `{data.get('git_commit', 'unknown')}` · "
                         f"command `{data.get('command', 'not recorded')}` · "
                         f"status: {status[_run_key(rel, data)]} · "
                         f"config `{json.dumps(data.get('config', {}), sort_keys=True, default=str)}`\n")
            lines.append(markdown_table(data["rows"]) if data["rows"] else "(no rows)\n")
            if path.stem in PLOTS:  # drawn from the saved rows, next to the report
                png = out.parent / "report_plots" / f"{path.stem}.png"
                draw_plot(path.stem, data, stage / "report_plots" / png.name)
                lines.append(f"![{path.stem}]({os.path.relpath(png.resolve(), out.parent.resolve())})\n")
            if path.parent not in shown:  # a folder's plots, once, after its first table
                shown.add(path.parent)
                lines += [f"![{png.stem}]({os.path.relpath(png.resolve(), out.parent.resolve())})\n"
                          for png in sorted(path.parent.glob("*.png"))]
        atomic_write_text(stage / out.name, "\n".join(lines))
        atomic_write_text(stage / "MANIFEST.md", "# Results manifest\n\nEvery results folder and run in it: the command "
                          "that regenerates its tables, the commit it was made at, and whether the code it depends on "
                          "changed since (written by `spikemfm report`).\n\n" + markdown_table(manifest))
        atomic_write_text(stage / "MANIFEST.json", json.dumps({"root": str(root), "folders": manifest}, indent=1))
    return out
