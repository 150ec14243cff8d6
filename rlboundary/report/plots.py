"""Paper-ready figures of one run: one function per figure, each returning a Figure.

Colours, axes, legends and saving follow the house style (report/plot_style.py), so a reader
can follow a checkpoint across figures.
"""

from __future__ import annotations

import itertools

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from rlboundary import probes
from rlboundary.report.load import (
    RunData,
    align,
    curves,
    ppl_per_problem,
    ppl_responses,
    predicted_curves,
    summary,
)
from rlboundary.report.plot_style import (
    BASE_COLOR,
    COVERAGE_COLORS,
    COVERAGE_LABELS,
    CURVE_MARKERS,
    MAX_BANDS,
    MAX_LEGEND,
    OKABE_ITO,
    bar_width,
    checkpoint_legend,
    crowded,
    draw_predicted,
    log2_k_axis,
    new_figure,
    outside_legend,
    step_axis,
    step_colors,
    step_label,
    styled,
)


def _band_steps(steps: list[int]) -> set[int]:
    """Steps that get a CI band: all of them when few, else base and latest (bands pile up)."""
    return set(steps) if len(steps) <= MAX_BANDS else {steps[0], steps[-1]}


def _draw_curves(ax, cur: dict, colors: dict, ylabel: str) -> None:
    steps = list(cur)
    bands = _band_steps(steps)
    many = len(steps) > MAX_LEGEND
    for i, (step, df) in enumerate(cur.items()):
        base = step == 0
        label = step_label(step) if base or not many else None
        # The base: dashed, large hollow circles, drawn beneath; checkpoints: small filled
        # markers of their own shape on top, so a curve equal to another still shows.
        style = (dict(ls="--", lw=1.8, marker="o", ms=6.5, mfc="none", zorder=2) if base else
                 dict(ls="-", lw=1.4, marker=CURVE_MARKERS[i % len(CURVE_MARKERS)], ms=3.5,
                      zorder=3))
        ax.plot(df["k"], df["pass"], color=colors[step], label=label, **style)
        if step in bands:
            ax.fill_between(df["k"], df["lo"], df["hi"], color=colors[step],
                            alpha=0.10 if base else 0.15, lw=0)
    log2_k_axis(ax, list(next(iter(cur.values()))["k"]))
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)


def _shaded(nsteps: int) -> str:
    return "95% CI" if nsteps <= MAX_BANDS else "95% CI of base and latest"


@styled
def pass_at_k_figure(data: RunData, dataset: str) -> Figure:
    """Figure 1: pass@k vs k per checkpoint, 95% bands over problems (Student-t).

    The study's central picture: RL lifts small k; whether the base catches up at large k
    shows whether RL widened or narrowed the set of solvable problems.
    """
    cur = curves(data, dataset)
    fig, ax = new_figure((6.4, 4.0))
    colors = step_colors(list(cur))
    _draw_curves(ax, cur, colors, "pass@k (fraction of problems)")
    pred = predicted_curves(data, dataset)
    if pred:
        draw_predicted(ax, cur, pred, colors, _band_steps(list(cur)))
    nprob = len(data.table(dataset, data.steps(dataset)[-1]))
    beyond = "; thin dashed beyond n = predicted" if pred else ""
    ax.set_title(f"{dataset}: pass@k per checkpoint ({nprob} problems, "
                 f"shaded = {_shaded(len(cur))}{beyond})", fontsize=9 if pred else None)
    checkpoint_legend(fig, ax, list(cur))
    return fig


@styled
def pass_over_steps_figure(data: RunData, dataset: str) -> Figure:
    """Figure 2: pass@1 and pass@k_max across training, with 95% CI error bars.

    Two lines diverging (pass@1 up, pass@k_max down) is the narrowing signature.
    """
    cur = curves(data, dataset)
    steps = list(cur)
    kmax = int(cur[steps[0]]["k"].iloc[-1])
    dodge = 0.008 * max(steps[-1] - steps[0], 1)  # keep the two error bars apart
    fig, ax = new_figure((6.4, 3.8))
    handles = []
    for row, k, color, mk, dx in ((0, 1, OKABE_ITO["blue"], "o", -dodge),
                                  (-1, kmax, OKABE_ITO["orange"], "s", dodge)):
        y = np.array([cur[s]["pass"].iloc[row] for s in steps])
        lo = np.array([cur[s]["lo"].iloc[row] for s in steps])
        hi = np.array([cur[s]["hi"].iloc[row] for s in steps])
        handles.append(ax.errorbar(
            np.array(steps) + dx, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)],
            color=color, marker=mk, ms=4, capsize=3, lw=1.5, label=f"pass@{k}"))
        if 0 in steps:
            ax.axhline(y[0], color=color, ls="--", lw=0.9, alpha=0.7)
    if 0 in steps:
        handles += ax.plot([], [], color="grey", ls="--", lw=0.9, label="base model level")
    step_axis(ax, steps)
    ax.set_ylabel("pass@k (fraction of problems)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{dataset}: pass@1 and pass@{kmax} over training (error bars = 95% CI)")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _coverage_counts(data: RunData, dataset: str) -> tuple[list[int], dict[str, list[int]]]:
    base = data.table(dataset, 0)
    steps = [s for s in data.steps(dataset) if s != 0]
    counts: dict[str, list[int]] = {k: [] for k in COVERAGE_COLORS}
    for s in steps:
        b, p = align(base, data.table(dataset, s))
        cov = probes.coverage(b["n"].to_numpy(), b["c"].to_numpy(), p["n"].to_numpy(),
                              p["c"].to_numpy())
        for k, col in counts.items():
            col.append(int(cov[f"n_{k}"]))
    return steps, counts


@styled
def coverage_figure(data: RunData, dataset: str) -> Figure:
    """Figure 3a: per checkpoint, which problems are solved (>=1 of n correct) by whom.

    "base only" are problems RL made unreachable; "policy only" are genuinely new ones.
    """
    steps, counts = _coverage_counts(data, dataset)
    fig, ax = new_figure((bar_width(len(steps)), 3.8))
    total = max(sum(c[0] for c in counts.values()), 1) if steps else 1
    # the count inside its segment, when the segment is tall and wide enough to read
    stacked_ledger(ax, counts, lambda v: v >= 0.04 * total and len(steps) <= 25)
    ax.set_xticks(np.arange(len(steps)), [str(s) for s in steps], **crowded(len(steps)))
    ax.set_xlabel("checkpoint (training step)")
    ax.set_title(f"{dataset}: solvability vs base (solved = any of n samples correct)")
    return fig


def stacked_ledger(ax, counts, label_if) -> None:
    """One stacked bar per column of ``counts`` ({category: (B,) problem counts}), the ledger
    categories bottom-up both, policy only, base only, neither; a segment's count is written in
    it when ``label_if(count)``. Sets the y label and the legend (top-down = stack top-down)."""
    first = next(iter(counts.values()))
    x = np.arange(len(first))
    bottom = np.zeros(len(first))
    for key in ("both", "policy_only", "base_only", "neither"):
        vals = np.asarray(counts[key], float)
        ax.bar(x, vals, bottom=bottom, color=COVERAGE_COLORS[key], width=0.7,
               label=COVERAGE_LABELS[key], edgecolor="white", lw=0.5)
        for xi, v, b0 in zip(x, vals, bottom):
            if label_if(v):
                ax.text(xi, b0 + v / 2, str(int(v)), ha="center", va="center", fontsize=7,
                        color="black" if key == "neither" else "white")
        bottom += vals
    ax.set_ylabel("number of problems")
    ax.grid(axis="x", visible=False)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0))


@styled
def transitions_figure(data: RunData, dataset: str) -> Figure:
    """Figure 3b: problems gained / lost between consecutive checkpoints.

    Churn hidden by a flat coverage total (gain 5, lose 5) shows up here.
    """
    steps = data.steps(dataset)
    pairs = list(itertools.pairwise(steps))
    gained, lost = [], []
    for a, b in pairs:
        ta, tb = align(data.table(dataset, a), data.table(dataset, b))
        t = probes.transitions(ta["c"].to_numpy(), tb["c"].to_numpy())
        gained.append(int(t["gained"]))
        lost.append(int(t["lost"]))
    fig, ax = new_figure((bar_width(len(pairs)), 3.6))
    x = np.arange(len(pairs))
    ax.bar(x, gained, color=OKABE_ITO["green"], width=0.6, label="gained (unsolved \u2192 solved)")
    ax.bar(x, [-v for v in lost], color=OKABE_ITO["vermillion"], width=0.6,
           label="lost (solved \u2192 unsolved)")
    ax.axhline(0, color="black", lw=0.8)
    span = max(max(gained, default=0), max(lost, default=0), 1)
    for xi, g, lo in zip(x, gained, lost):
        if g:
            ax.text(xi, g + 0.03 * span, f"+{g}", ha="center", va="bottom", fontsize=7)
        if lo:
            ax.text(xi, -lo - 0.03 * span, f"-{lo}", ha="center", va="top", fontsize=7)
    ax.set_ylim(-1.25 * span, 1.25 * span)
    ticks = [f"{a}\u2192{b}\nnet {g - lo:+d}" for (a, b), g, lo in zip(pairs, gained, lost)]
    ax.set_xticks(x, ticks, **crowded(len(pairs)))
    ax.set_xlabel("consecutive checkpoints (training step)")
    ax.set_ylabel("number of problems")
    ax.grid(axis="x", visible=False)
    ax.set_title(f"{dataset}: problems gained / lost between checkpoints")
    outside_legend(ax)
    return fig


@styled
def accuracy_histogram_figure(data: RunData, dataset: str) -> Figure:
    """Figure 4: per-problem accuracy c/n, base vs latest checkpoint (study's Figure 5 style).

    RL typically drains the middle bins into 1 (sharpening) and can grow the 0 bin.
    """
    steps = data.steps(dataset)
    show = [s for s in (steps[0], steps[-1])]
    show = list(dict.fromkeys(show))
    colors = step_colors(steps)
    fig, ax = new_figure((7.0, 3.8))
    width = 0.8 / len(show)
    labels = None
    for i, s in enumerate(show):
        df = data.table(dataset, s)
        edges, counts = probes.accuracy_histogram(df["n"].to_numpy(), df["c"].to_numpy())
        counts = np.asarray(counts, float)
        frac = counts / max(counts.sum(), 1)
        labels = labels or probes.accuracy_bin_labels(edges)
        x = np.arange(len(counts)) + (i - (len(show) - 1) / 2) * width
        face = "white" if s == 0 else colors[s]
        ax.bar(x, frac, width=width, color=face, edgecolor=colors[s], lw=1.0,
               hatch="///" if s == 0 else None, label=step_label(s))
    ax.set_xticks(np.arange(len(labels)), labels, rotation=35, ha="right")
    ax.set_xlabel("per-problem accuracy c/n (0 and 1 are exact)")
    ax.set_ylabel("fraction of problems")
    ax.grid(axis="x", visible=False)
    ax.set_title(f"{dataset}: per-problem accuracy distribution")
    outside_legend(ax)
    return fig


def _ppl_box(df) -> dict | None:
    """Box statistics (q10, q25, median, q75, q90 whiskers; mean) of the per-response base
    perplexity of one checkpoint, pooled from its per-problem quantile summaries."""
    keys = probes.summary_keys("ppl_base")
    if not all(k in df for k in keys) or not np.isfinite(df["ppl_base_mean"]).any():
        return None
    mean, q = ppl_responses(df, (0.1, 0.25, 0.5, 0.75, 0.9))
    if not np.isfinite(q).all():
        return None
    return {"whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4],
            "mean": mean, "fliers": []}


@styled
def perplexity_figure(data: RunData, dataset: str) -> Figure | None:
    """The study's Figure 6: distributions of PPL_base(Y_base | x) and PPL_base(Y_ckpt | x),
    per response, side by side for each checkpoint.

    PPL(Y|x) = exp(-(1/T) sum_t log P_base(y_t | x, y_<t)) of each sampled response; boxes are
    the 25-75% range, whiskers 10-90%, the line the median and the dot the mean, pooled over
    problems from the per-problem quantile summaries (no samples file needed). If RL only
    re-weights what the base already says, its responses sit in the lower part of the base's
    own distribution. Tables without per-response columns fall back to per-problem pooled
    values. Returns None when no checkpoint has base-model scores.
    """
    steps = data.steps(dataset)
    boxes = {s: _ppl_box(data.table(dataset, s)) for s in steps}
    if any(b is None for b in boxes.values()):
        return _ppl_per_problem_figure(data, dataset)
    colors = step_colors(steps)
    base = boxes.get(0)
    pairs = [s for s in steps if s != 0] or [0]
    fig, ax = new_figure((bar_width(2 * len(pairs)), 3.8))
    stats, pos, faces = [], [], []
    for i, s in enumerate(pairs):
        if base is not None and s != 0:
            stats.append(dict(base, label="base"))
            pos.append(3 * i)
            faces.append("white")
        stats.append(dict(boxes[s], label=step_label(s)))
        pos.append(3 * i + 1)
        faces.append("white" if s == 0 else colors[s])
    bp = ax.bxp(stats, positions=pos, widths=0.8, patch_artist=True, showmeans=True,
                showfliers=False, meanprops={"marker": "o", "ms": 3.5, "mfc": "black",
                                             "mec": "black"})
    for patch, face in zip(bp["boxes"], faces):
        patch.set_facecolor(face)
        patch.set_edgecolor("black")
        if face == "white":
            patch.set_linestyle("--")
    for med in bp["medians"]:
        med.set_color("black")
    lo = min(b["whislo"] for b in stats)
    hi = max(b["whishi"] for b in stats)
    if lo > 0 and hi / lo > 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xticks([3 * i + 0.5 for i in range(len(pairs))],
                  ["base" if s == 0 else str(s) for s in pairs], **crowded(len(pairs)))
    ax.set_xlabel("checkpoint (training step): base's own responses (dashed) | checkpoint's")
    ax.set_ylabel("PPL$_{base}$(Y | x) per response")
    ax.grid(axis="x", visible=False)
    ax.set_title(f"{dataset}: base-model perplexity of responses (study Fig. 6)")
    return fig


def _ppl_per_problem_figure(data: RunData, dataset: str) -> Figure | None:
    """Fallback for tables without per-response columns: per-problem pooled perplexity."""
    steps = data.steps(dataset)
    vals = {s: ppl_per_problem(data.table(dataset, s)) for s in steps}
    vals = {s: v[np.isfinite(v)] for s, v in vals.items() if np.isfinite(v).any()}
    if not vals:
        return None
    colors = step_colors(steps)
    fig, ax = new_figure((bar_width(len(vals)), 3.8))
    pos = np.arange(len(vals))
    bp = ax.boxplot(list(vals.values()), positions=pos, widths=0.6, patch_artist=True,
                    showfliers=True, flierprops={"ms": 2.5, "alpha": 0.5})
    for patch, s in zip(bp["boxes"], vals):
        patch.set_facecolor("white" if s == 0 else colors[s])
        patch.set_alpha(1.0 if s == 0 else 0.6)
        patch.set_edgecolor("black")
        if s == 0:
            patch.set_linestyle("--")
    for med in bp["medians"]:
        med.set_color("black")
    ax.set_xticks(pos, ["base" if s == 0 else str(s) for s in vals], **crowded(len(vals)))
    ax.set_xlabel("checkpoint (training step)")
    ax.set_ylabel("base-model perplexity per problem\nexp(NLL$_{base}$ / token), pooled")
    ax.grid(axis="x", visible=False)
    ax.set_title(f"{dataset}: base-model perplexity of each checkpoint's samples")
    return fig


@styled
def entropy_figure(data: RunData, dataset: str) -> Figure | None:
    """Figure 6: per-token policy entropy across training (token-weighted mean, IQR over problems).

    Entropy collapse is the usual mechanism behind a narrowing boundary. None if unmeasured.
    """
    steps = [s for s in data.steps(dataset)
             if np.isfinite(data.table(dataset, s)["entropy"].to_numpy(float)).any()]
    if not steps:
        return None
    ent = [data.table(dataset, s)["entropy"].to_numpy(float) for s in steps]
    ent = [e[np.isfinite(e)] for e in ent]
    # The line is the summary-table value (token-weighted mean); the band is per-problem IQR.
    mean = summary(data, dataset).set_index("step").loc[steps, "entropy"].to_numpy(float)
    q1, q3 = [np.percentile(e, 25) for e in ent], [np.percentile(e, 75) for e in ent]
    fig, ax = new_figure((6.4, 3.6))
    ax.fill_between(steps, q1, q3, color=OKABE_ITO["purple"], alpha=0.2, lw=0,
                    label="interquartile range over problems")
    ax.plot(steps, mean, color=OKABE_ITO["purple"], marker="o", ms=4, lw=1.5,
            label="token-weighted mean")
    if 0 in steps:
        ax.axhline(mean[0], color=BASE_COLOR, ls="--", lw=1, label="base model")
    step_axis(ax, steps)
    ax.set_ylabel("policy entropy (nats / token)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{dataset}: per-token entropy of sampled responses")
    outside_legend(ax)
    return fig


@styled
def validity_figure(data: RunData, dataset: str) -> Figure | None:
    """Figure 7: final-answer pass@k beside whole-trace-validity pass@k.

    A right answer reached by an invalid trace inflates pass@k at large k (lucky guesses);
    the gap between panels measures it. None when the dataset has no trace check.
    """
    if not data.has_validity(dataset):
        return None
    ans, val = curves(data, dataset), curves(data, dataset, valid=True)
    colors = step_colors(list(ans))
    fig, axes = new_figure((10.0, 3.8), ncols=2, sharey=True)
    _draw_curves(axes[0], ans, colors, "pass@k (fraction of problems)")
    _draw_curves(axes[1], val, colors, "")
    axes[0].set_title("final answer correct")
    axes[1].set_title("whole trace valid")
    axes[1].tick_params(labelleft=True)
    fig.suptitle(f"{dataset}: answer vs trace-validity pass@k (shaded = "
                 f"{_shaded(len(ans))})", fontsize=10)
    fig.tight_layout()
    checkpoint_legend(fig, axes[1], list(ans))
    return fig
