"""PNG breakdown of an energy report: per layer kind, spiking path vs each dense baseline."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from spikemfm.energy.model import EnergyReport
from spikemfm.core.io import save_figure


def plot_breakdown(report: EnergyReport, path: Path, title: str = "") -> Path:
    """Grouped bars (nJ per inference, log scale) per layer kind: the SNN next to each dense baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["snn"] + list(report.baselines)
    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in report.rows:
        for col in columns:
            v = row.snn_pj if col == "snn" else row.dense_pj.get(col)
            if v:
                by_kind[row.kind][col] += v / 1000.0
    fig, ax = plt.subplots(figsize=(8, 4))
    kinds = sorted(by_kind)
    width = 0.8 / len(columns)
    for i, col in enumerate(columns):
        total = sum(by_kind[k].get(col, 0.0) for k in kinds)
        ax.bar([j + i * width for j in range(len(kinds))], [by_kind[k].get(col, 0.0) for k in kinds], width,
               label=f"{col} (total {total:.3g} nJ)")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(kinds))], kinds, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("nJ per inference (log)")
    note = "" if report.complete else " — INCOMPLETE: no " + ", ".join(report.missing)
    ax.set_title((title or f"{report.profile}, T={report.timesteps}") + note, fontsize=8)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
