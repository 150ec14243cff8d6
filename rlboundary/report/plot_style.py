"""The house style every figure shares: colours, markers, axes, legends and saving.

Colour rules, so a reader can follow a checkpoint across figures: the base model (step 0) is
always black and dashed; RL checkpoints run along viridis (dark = early, light = late), which
stays readable under the common colour-vision deficiencies. Categorical colours (coverage,
gains/losses, runs) come from the Okabe-Ito palette. Legends sit outside the axes so they never
hide data. Figures are plain ``matplotlib.figure.Figure`` objects (no pyplot): they render with
Agg when saved, work on headless nodes, and never change the caller's backend or rcParams.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

DPI = 150
MAX_LEGEND = 10  # checkpoints beyond this get a colour bar instead of legend entries
MAX_BANDS = 4  # checkpoints beyond this: CI bands only for base and latest
BASE_COLOR = "black"
OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "grey": "#999999",
}
COVERAGE_COLORS = {
    "both": OKABE_ITO["blue"], "base_only": OKABE_ITO["vermillion"],
    "policy_only": OKABE_ITO["green"], "neither": "#D9D9D9",
}
COVERAGE_LABELS = {
    "both": "solved by both", "base_only": "base only (lost)",
    "policy_only": "policy only (new)", "neither": "neither",
}
STYLE = {
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8,
    "legend.frameon": False,
}


def styled(fn):
    """Build the figure under the report style without touching the caller's rcParams."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def new_figure(figsize: tuple[float, float], ncols: int = 1, sharey: bool = False):
    """A pyplot-free Figure: rendered by Agg on save, no global backend or figure manager."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(1, ncols, sharey=sharey)


def step_colors(steps: list[int]) -> dict[int, object]:
    """Fixed colour per step: black for the base, viridis for RL checkpoints in order."""
    rl = [s for s in steps if s != 0]
    cmap = mpl.colormaps["viridis"]
    out: dict[int, object] = {0: BASE_COLOR} if 0 in steps else {}
    for i, s in enumerate(rl):
        out[s] = cmap(0.85 * i / max(len(rl) - 1, 1))
    return out


def step_label(step: int) -> str:
    return "base (step 0)" if step == 0 else f"step {step}"


def save(fig: Figure, path: str | Path) -> Path:
    """Write a figure as PNG at the report resolution (style active: ticks are made at draw)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context(STYLE):
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def outside_legend(ax, **kw) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), **kw)


def step_axis(ax, steps: list[int]) -> None:
    """Training-step x axis: ticks at the checkpoints when few, else integer ticks."""
    if len(steps) <= 12:
        ax.set_xticks(steps)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")


def log2_k_axis(ax, ks: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlim(ks[0] / 1.15, ks[-1] * 1.15)
    ax.set_xlabel("k (samples per problem, log$_2$ scale)")


CURVE_MARKERS = ("s", "^", "D", "v", "P", "X", "<", ">")


def checkpoint_legend(fig, ax, steps: list[int]) -> None:
    """Legend of checkpoints outside the axes, or a colour bar when there are many."""
    if len(steps) <= MAX_LEGEND:
        outside_legend(ax)
        return
    step_colorbar(fig, ax, steps)
    if 0 in steps:  # only the base entry is left; under the axis, off the data
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, -0.17))


def step_colorbar(fig, ax, steps: list[int]) -> None:
    """With many checkpoints a colour bar of training steps replaces per-step legend lines."""
    rl = [s for s in steps if s != 0]
    if len(steps) <= MAX_LEGEND or len(rl) < 2:
        return
    cmap = LinearSegmentedColormap.from_list(
        "viridis_cut", mpl.colormaps["viridis"](np.linspace(0, 0.85, 256)))
    sm = mpl.cm.ScalarMappable(cmap=cmap, norm=Normalize(rl[0], rl[-1]))
    fig.colorbar(sm, ax=ax, label="RL checkpoint (training step)", pad=0.02, fraction=0.05)


def bar_width(nbars: int) -> float:
    """Figure width for a bar chart: grows with the bars, capped to fit a page."""
    return min(14.0, max(4.8, 0.55 * nbars + 3.5))


def crowded(nbars: int) -> dict:
    """Tick-label keywords: rotate them when many bars share the capped width."""
    return {"rotation": 45, "ha": "right"} if nbars > 16 else {}


def draw_predicted(ax, cur: dict, pred: dict, colors: dict, bands: set) -> None:
    """Each checkpoint's predicted pass@k beyond its samples (probes/beyond.py), thin dashed from
    its last measured point, with a light band for the steps in ``bands``; a dotted line
    marks where measurement ends. ``cur``/``pred``: ``{step: DataFrame(k, pass, lo, hi)}``
    measured and predicted; ``colors``: ``{step: colour}``."""
    for step, df in pred.items():
        if step not in cur:
            continue
        last = cur[step].iloc[-1]
        ax.plot([last["k"], *df["k"]], [last["pass"], *df["pass"]], color=colors[step],
                ls=(0, (4, 2)), lw=1.0, zorder=1)
        if step in bands:
            ax.fill_between(df["k"], df["lo"], df["hi"], color=colors[step], alpha=0.07, lw=0)
    measured = list(next(iter(cur.values()))["k"])
    ks = measured + sorted({int(k) for df in pred.values() for k in df["k"]} - set(measured))
    log2_k_axis(ax, ks)
    ax.axvline(measured[-1], color="grey", ls=":", lw=0.8)
    ax.tick_params(axis="x", labelsize=7)
