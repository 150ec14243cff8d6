"""Figures of the probes beyond the study's own (cover@τ, answer diversity): same colour rules
as `plots`."""

from __future__ import annotations

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
from rlboundary.results.control import read_control


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
    """The temperature control (RUN_DIR/control.json, results/control.py): pass@k of the base
    and the checkpoint at the probe's temperature T, and of each entropy-matched control: the
    checkpoint at T* where its token entropy equals the base's at T (``policy``, the study's),
    the base at T* where its entropy equals the checkpoint's at T (``base``). One log-k plot;
    None when the run has no control for ``dataset``."""
    entries = read_control(data.run_dir).get(dataset, {})
    entries = {t: e for t, e in entries.items() if e["step"] in data.steps(dataset)}
    if not entries:
        return None
    first = next(iter(entries.values()))
    step, t0 = first["step"], first["temperature"]
    ckpt = step_label(step)
    lines = [(f"base, T={t0:g}", data.table(dataset, 0), BASE_COLOR, "--"),
             (f"{ckpt}, T={t0:g}", data.table(dataset, step), OKABE_ITO["vermillion"], "-")]
    if "policy" in entries:
        e = entries["policy"]
        lines.append((f"{ckpt}, T*={e['matched_temperature']:g} (its entropy = base's at T)",
                      load_run(e["run_dir"]).table(dataset, e["step"]), OKABE_ITO["orange"],
                      ":"))
    if "base" in entries:
        e = entries["base"]
        lines.append((f"base, T*={e['matched_temperature']:g} (its entropy = {ckpt}'s at T)",
                      load_run(e["run_dir"]).table(dataset, 0), OKABE_ITO["blue"], ":"))
    ks = k_grid(min(k_max(table) for _, table, _, _ in lines))
    fig, ax = new_figure((6.4, 3.8))
    for label, table, color, ls in lines:
        c = curve(table, ks)
        ax.plot(c["k"], c["pass"], color=color, ls=ls, marker="o", ms=3.5, lw=1.5, label=label)
        ax.fill_between(c["k"], c["lo"], c["hi"], color=color, alpha=0.12, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k")
    entropy = "; ".join(f"{'base' if t == 'policy' else ckpt} {e['target_entropy']:.3f} nats at "
                        f"T" for t, e in entries.items())
    ax.set_title(f"{dataset}: is the loss at large k only lower entropy?\n(token entropy on "
                 f"{first['problems']} problems: {entropy})", fontsize="medium")
    outside_legend(ax)
    return fig
