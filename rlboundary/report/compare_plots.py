"""Figures of `report --compare`: several runs against their base model.

Same rules as `plots`: the base model is black and dashed with hollow markers, drawn beneath
(where runs have bases sampled differently, each base is dashed in its first run's colour);
runs take the Okabe-Ito colours in order, each with its own marker shape, so equal curves still
show; legends sit outside the axes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rlboundary.report.plot_style import (
    BASE_COLOR,
    COVERAGE_COLORS,
    CURVE_MARKERS,
    OKABE_ITO,
    bar_width,
    crowded,
    draw_predicted,
    log2_k_axis,
    new_figure,
    outside_legend,
    step_axis,
    styled,
)
from rlboundary.report.plots import stacked_ledger

RUN_COLORS = [OKABE_ITO[c] for c in ("blue", "orange", "green", "vermillion", "sky", "purple",
                                     "yellow", "grey")]


def _run_style(i: int) -> dict:
    return dict(color=RUN_COLORS[i % len(RUN_COLORS)], marker=CURVE_MARKERS[i % len(CURVE_MARKERS)])


def base_colors(bases: dict[str, list[str]], runs: list[str]) -> dict[str, str]:
    """{base label: colour}: black for a single base; else the colour of its first run."""
    if len(bases) == 1:
        return {next(iter(bases)): BASE_COLOR}
    return {b: _run_style(runs.index(members[0]))["color"] for b, members in bases.items()}


@styled
def compare_curves_figure(bases: dict[str, pd.DataFrame], runs: dict[str, pd.DataFrame],
                          dataset: str, groups: dict[str, list[str]],
                          predicted: dict[str, pd.DataFrame] | None = None) -> Figure:
    """pass@k (columns k, pass, lo, hi) of each run's last checkpoint beside its base model's
    (``bases``: {base label: curve}; ``groups``: {base label: run labels}); ``predicted``:
    {base or run label: pass@k predicted beyond n (same columns)}, drawn thin dashed with
    its band (plot_style.draw_predicted)."""
    fig, ax = new_figure((7.0, 4.0))
    colors = base_colors(groups, list(runs))
    for label, base in bases.items():
        ax.plot(base["k"], base["pass"], color=colors[label], ls="--", lw=1.8, marker="o",
                ms=6.5, mfc="none", zorder=2, label=label)
        ax.fill_between(base["k"], base["lo"], base["hi"], color=colors[label], alpha=0.08,
                        lw=0)
    for i, (label, df) in enumerate(runs.items()):
        st = _run_style(i)
        ax.plot(df["k"], df["pass"], lw=1.4, ms=3.5, zorder=3, label=label, **st)
        ax.fill_between(df["k"], df["lo"], df["hi"], color=st["color"], alpha=0.10, lw=0)
    log2_k_axis(ax, [int(k) for k in next(iter(bases.values()))["k"]])
    if predicted:
        hues = {**colors, **{label: _run_style(i)["color"] for i, label in enumerate(runs)}}
        draw_predicted(ax, {**bases, **runs}, predicted, hues, set(predicted))
    ax.set_ylabel("pass@k (fraction of problems)")
    ax.set_ylim(-0.02, 1.02)
    beyond = "; thin dashed beyond n = predicted" if predicted else ""
    ax.set_title(f"{dataset}: pass@k, last checkpoint of each run (shaded = 95% CI{beyond})",
                 fontsize=9 if predicted else None)
    outside_legend(ax)
    return fig


@styled
def compare_steps_figure(runs: dict[str, pd.DataFrame], k: int, dataset: str,
                         bases: dict[str, pd.Series], groups: dict[str, list[str]]) -> Figure:
    """pass@1 (left) and pass@k (right) at every probed step of each run, 95% CI error bars;
    ``runs[label]`` has columns step, pass@1, pass@1_lo, pass@1_hi, pass@k, ...; ``bases``
    holds each base model's pass@1 and pass@k ({base label: row}) for the dashed reference
    lines, ``groups`` its runs."""
    fig, axes = new_figure((11.0, 3.8), ncols=2)  # own y range each: pass@k_max moves little
    steps = sorted({int(s) for df in runs.values() for s in df["step"]})
    span = max(steps[-1] - steps[0], 1) if steps else 1
    colors = base_colors(groups, list(runs))
    for ax, kk in zip(axes, (1, k)):
        for i, (label, df) in enumerate(runs.items()):
            y = df[f"pass@{kk}"].to_numpy(float)
            err = [np.clip(y - df[f"pass@{kk}_lo"], 0, None), np.clip(df[f"pass@{kk}_hi"] - y, 0, None)]
            dx = (i - (len(runs) - 1) / 2) * 0.006 * span  # dodge so error bars stay apart
            ax.errorbar(df["step"] + dx, y, yerr=err, lw=1.3, ms=4, capsize=2.5, label=label,
                        **_run_style(i))
        for label, base in bases.items():
            ax.axhline(base[f"pass@{kk}"], color=colors[label], ls="--", lw=1, label=label)
        step_axis(ax, steps)
        ax.set_title(f"pass@{kk}")
    axes[0].set_ylabel("pass@k (fraction of problems)")
    axes[0].set_ylim(-0.02, 1.02)
    low, _ = axes[1].get_ylim()
    axes[1].set_ylim(max(low, -0.02), 1.005)
    fig.suptitle(f"{dataset}: pass@1 and pass@{k} over training (error bars = 95% CI)")
    outside_legend(axes[1])
    return fig


@styled
def compare_ledger_figure(table: pd.DataFrame, dataset: str) -> Figure:
    """Stacked ledger counts (columns both, policy_only, base_only, neither) per run."""
    labels = [str(r) for r in table["run"]]
    fig, ax = new_figure((bar_width(len(labels)), 3.8))
    stacked_ledger(ax, {key: table[key].to_numpy(float) for key in COVERAGE_COLORS},
                   lambda v: v > 0)
    long = len(labels) > 3 or max(map(len, labels)) * len(labels) > 45  # labels would touch
    ax.set_xticks(np.arange(len(labels)), labels,
                  **({"rotation": 30, "ha": "right"} if long else crowded(len(labels))))
    ax.set_title(f"{dataset}: solvability vs base, last checkpoint of each run")
    return fig
