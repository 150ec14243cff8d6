"""Figures of the probes beyond the study's own (cover@τ, answer diversity): same colour rules
as `plots`."""

from __future__ import annotations

import json

import numpy as np
from matplotlib.figure import Figure

from rlboundary import probes
from rlboundary.report.load import RunData, curve, k_grid, k_max, load_run, summary
from rlboundary.report.plot_style import (
    BASE_COLOR,
    MAX_LEGEND,
    OKABE_ITO,
    checkpoint_legend,
    new_figure,
    outside_legend,
    step_axis,
    step_colors,
    step_label,
    styled,
)


@styled
def cover_figure(data: RunData, dataset: str) -> Figure:
    """cover@τ of the base and every checkpoint: the share of problems solved at least a
    fraction τ of the time (a step curve on the grid 1/n_min, ..., 1; log τ axis)."""
    steps = data.steps(dataset)
    colors = step_colors(steps)
    n_min = int(data.problems.loc[data.problems["dataset"] == dataset, "n"].min())
    taus = np.arange(1, n_min + 1) / n_min
    fig, ax = new_figure((6.4, 3.8))
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
    ax.set_xticks(sorted(ticks), [f"1/{round(1 / t)}" if t < 1 else "1"
                                  for t in sorted(ticks)])
    ax.set_xlim(taus[0] / 1.1, 1.05)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (per-problem success rate c/n at least; log scale)")
    ax.set_ylabel("cover@τ (fraction of problems)")
    ax.set_title(f"{dataset}: problems solved at least a fraction τ of the time")
    checkpoint_legend(fig, ax, steps)
    return fig


@styled
def answers_figure(data: RunData, dataset: str) -> Figure | None:
    """Answer diversity over training: mean distinct final answers per problem and the mean
    entropy of their distribution (nats), over all samples (solid) and correct ones (dashed);
    the base model's values as thin black lines. None when no probed step has the columns."""
    table = summary(data, dataset).set_index("step")   # runs the `answers` probe per step
    if "answers_distinct" not in table.columns:
        return None
    table = table[np.isfinite(table["answers_distinct"].to_numpy(float))]
    steps = [int(s) for s in table.index]
    if not steps:
        return None
    fig, axes = new_figure((10.0, 3.6), ncols=2)
    panels = (("answers_distinct", "distinct answers per problem"),
              ("answers_entropy", "answer entropy (nats)"))
    for ax, (key, label) in zip(axes, panels):
        for suffix, style, what in (("", "-", "all samples"), ("_correct", "--",
                                                               "correct samples")):
            col = key + suffix
            y = table[col].to_numpy(float) if col in table.columns else np.full(len(steps),
                                                                                np.nan)
            ax.plot(steps, y, ls=style, marker="o", ms=4, lw=1.5,
                    color=OKABE_ITO["vermillion"], label=what)
            if 0 in steps:
                ax.axhline(y[0], color=BASE_COLOR, ls=style, lw=0.8,
                           label="base model" if not suffix else None)
        step_axis(ax, steps)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    axes[0].set_title(f"{dataset}: distinct final answers")
    axes[1].set_title("entropy of the answers' distribution")
    outside_legend(axes[1])
    return fig


@styled
def control_figure(data: RunData, dataset: str) -> Figure | None:
    """The temperature control (RUN_DIR/control.json): pass@k of the base at the probe's
    temperature T, the base at T* (where its token entropy equals the checkpoint's) and the
    checkpoint, on one log-k plot. None when the run has no control for ``dataset``."""
    path = data.run_dir / "control.json"
    if not path.exists():
        return None
    info = json.loads(path.read_text()).get(dataset)
    if not info or info["step"] not in data.steps(dataset):
        return None
    matched = load_run(info["run_dir"]).table(dataset, 0)
    tables = {f"base, T={info['temperature']:g}": data.table(dataset, 0),
              f"base, T*={info['matched_temperature']:g} (entropy matched)": matched,
              f"{step_label(info['step'])}, T={info['temperature']:g}":
                  data.table(dataset, info["step"])}
    ks = k_grid(min(k_max(t) for t in tables.values()))
    styles = [(BASE_COLOR, "--"), (OKABE_ITO["blue"], ":"), (OKABE_ITO["vermillion"], "-")]
    fig, ax = new_figure((6.4, 3.8))
    for (label, table), (color, ls) in zip(tables.items(), styles):
        c = curve(table, ks)
        ax.plot(c["k"], c["pass"], color=color, ls=ls, marker="o", ms=3.5, lw=1.5, label=label)
        ax.fill_between(c["k"], c["lo"], c["hi"], color=color, alpha=0.12, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k")
    ax.set_title(f"{dataset}: is the loss at large k only lower entropy? (token entropy "
                 f"{info['target_entropy']:.3f} nats on {info['problems']} problems)")
    outside_legend(ax)
    return fig
