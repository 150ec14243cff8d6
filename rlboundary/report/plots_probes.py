"""Figures of the probes beyond the study's own (cover@τ): same colour rules as `plots`."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from rlboundary import probes
from rlboundary.report.load import RunData
from rlboundary.report.plots import (MAX_LEGEND, _checkpoint_legend, _new, _styled,
                                     step_colors, step_label)


@_styled
def cover_figure(data: RunData, dataset: str) -> Figure:
    """cover@τ of the base and every checkpoint: the share of problems solved at least a
    fraction τ of the time (a step curve on the grid 1/n_min, ..., 1; log τ axis)."""
    steps = data.steps(dataset)
    colors = step_colors(steps)
    n_min = int(data.problems.loc[data.problems["dataset"] == dataset, "n"].min())
    taus = np.arange(1, n_min + 1) / n_min
    fig, ax = _new((6.4, 3.8))
    for step in steps:
        t = data.table(dataset, step)
        cov = probes.cover_at(t["n"].to_numpy(int), t["c"].to_numpy(int), taus)
        base = step == 0
        ax.step(taus, cov, where="post", color=colors[step], lw=1.8 if base else 1.4,
                ls="--" if base else "-", zorder=2 if base else 3,
                label=step_label(step) if base or len(steps) <= MAX_LEGEND else None)
    # log τ: the left end (rarely solved problems) is what pass@k at large k reads
    ax.set_xscale("log", base=2)
    ticks = [2.0 ** -e for e in range(int(np.log2(n_min)), -1, -2)][::-1] if n_min > 1 else [1.0]
    ax.set_xticks(sorted(ticks), [f"1/{int(round(1 / t))}" if t < 1 else "1"
                                  for t in sorted(ticks)])
    ax.set_xlim(taus[0] / 1.1, 1.05)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (per-problem success rate c/n at least; log scale)")
    ax.set_ylabel("cover@τ (fraction of problems)")
    ax.set_title(f"{dataset}: problems solved at least a fraction τ of the time")
    _checkpoint_legend(fig, ax, steps)
    return fig
