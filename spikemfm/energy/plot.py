"""PNG breakdown of an energy report: per layer kind, spiking path vs each dense baseline."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from spikemfm.energy.model import EnergyReport
from spikemfm.io import save_figure


def plot_breakdown(report: EnergyReport, path: Path, title: str = "") -> Path:
    """Stacked bars (nJ per inference) by layer kind for the SNN and each dense baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["snn"] + list(report.baselines)
    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in report.rows:
        for col in columns:
            v = row.get(f"{col}_pJ")
            if v:
                by_kind[row["kind"]][col] += v / 1000.0
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = [0.0] * len(columns)
    for kind, vals in sorted(by_kind.items()):
        heights = [vals.get(c, 0.0) for c in columns]
        ax.bar(columns, heights, bottom=bottom, label=kind)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_yscale("log")
    ax.set_ylabel("nJ per inference (log)")
    note = "" if report.complete else " — INCOMPLETE: no " + ", ".join(report.missing)
    ax.set_title((title or f"{report.profile}, T={report.timesteps}") + note, fontsize=8)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
