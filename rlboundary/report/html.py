"""One self-contained HTML page per run: summary tables and every figure, images inlined.

Inlining the PNGs (base64) means the page can be mailed or attached to a paper review as a
single file; the PNGs are also written beside it for slides and LaTeX.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rlboundary.probes.suite import APPROX_BELOW
from rlboundary.report import plots, plots_probes
from rlboundary.report.fragments import CSS, figure_html, fmt, slug
from rlboundary.report.load import PRED_RE, RunData, load_run, summary
from rlboundary.report.plot_style import save
from rlboundary.report.training import training_section

# (file stem, caption, builder, requirement): requirement "steps" = two or more checkpoints,
# "base" = the base model (step 0) and at least one RL checkpoint, None = always drawn.
FIGURES: list[tuple[str, str, Callable, str | None]] = [
    ("pass_at_k", "pass@k per checkpoint; base model black dashed; bands are 95% "
     "CIs over problems (Student-t).", plots.pass_at_k_figure, None),
    ("pass_over_steps", "pass@1 and pass@k_max across training (95% CI error bars); dashed "
     "lines mark the base model.", plots.pass_over_steps_figure, "steps"),
    ("coverage", "Solvability vs base per checkpoint (solved = at least one of n samples "
     "correct).", plots.coverage_figure, "base"),
    ("transitions", "Problems gained / lost between consecutive checkpoints.",
     plots.transitions_figure, "steps"),
    ("accuracy_hist", "Per-problem accuracy c/n, first (base) vs latest checkpoint (0 and "
     "1 are their own bins).", plots.accuracy_histogram_figure, None),
    ("perplexity", "Base-model perplexity of each response (the study's Figure 6): the base "
     "model's own responses (dashed) beside each checkpoint's; boxes span the 10-90% "
     "quantiles with the quartiles and median, dots are means.", plots.perplexity_figure,
     None),
    ("entropy", "Per-token policy entropy over training (token-weighted mean; band = IQR "
     "over problems).", plots.entropy_figure, "steps"),
    ("validity", "Final-answer pass@k beside whole-trace-validity pass@k.",
     plots.validity_figure, None),
    ("cover", "cover@τ: the share of problems solved at least a fraction τ of the time "
     "(c/n >= τ), log τ axis; pass@k is its Beta(1, k)-weighted mean, so small k reads the "
     "right end and large k the left. Base model black dashed.", plots_probes.cover_figure, None),
    ("answers", "Answer diversity: distinct final answers per problem (after the verifier's "
     "normalisation) and the entropy of their distribution, over all samples and over the "
     "correct ones; thin black lines mark the base model.", plots_probes.answers_figure, None),
    ("control", "The temperature control (rlboundary probe ... control=temperature): the base "
     "model and the checkpoint at the probe's temperature T, the checkpoint at the temperature "
     "T* where its token entropy equals the base's at T (the study's direction, "
     "temperature_control.target=policy), and the base at the T* where its entropy equals the "
     "checkpoint's (target=base). If the base still beats the entropy-matched checkpoint at "
     "large k, the shrinkage is not just lower entropy.",
     plots_probes.control_figure, None),
]
# Why a figure builder returned None (its input was not measured).
UNMEASURED = {
    "perplexity": "no base-model NLL scores (nll_base_sum / n_tokens) in this run",
    "entropy": "policy entropy was not measured",
    "validity": "this dataset has no whole-trace check (c_valid = -1)",
    "answers": "no answer-diversity columns (results stored before the answers probe)",
}
# Figures left out without a note when None (optional analyses the run did not ask for).
OPTIONAL = {"control"}

def _pass_cell(row: pd.Series, key: str) -> str:
    v = row.get(key, math.nan)
    lo, hi = row.get(f"{key}_lo", math.nan), row.get(f"{key}_hi", math.nan)
    ci = f' <span class="ci">[{fmt(lo)}, {fmt(hi)}]</span>' if pd.notna(lo) else ""
    return fmt(v) + ci


def summary_html(df: pd.DataFrame) -> str:
    """Summary table: one row per checkpoint, CIs in grey beside each pass@k."""
    kmax = int(df["k_max"].iloc[0])
    pass_keys = [f"pass@{k}" for k in sorted({1, 16, kmax}) if k <= kmax]
    valid_keys = [f"valid_{k}" for k in pass_keys if f"valid_{k}" in df.columns]
    cov = [f"coverage/n_{c}" for c in ("both", "base_only", "policy_only", "neither")
           if f"coverage/n_{c}" in df.columns]
    trans = [c for c in ("transitions/gained", "transitions/lost") if c in df.columns]
    plain = {"both": "both", "base_only": "base only", "policy_only": "RL only",
             "neither": "neither"}
    names = {**{c: plain[c.replace("coverage/n_", "")] for c in cov},
             "transitions/gained": "gained vs prev", "transitions/lost": "lost vs prev",
             "delta_se": f"delta_se@{kmax}"}  # the study's ΔSE is @256; say which k we used
    cells_of = {"step": lambda r: str(int(r["step"])) + (" (base)" if r["step"] == 0 else ""),
                "problems": lambda r: str(int(r["n_problems"])),
                "delta_se": lambda r: fmt(r.get("delta_se", math.nan)),
                "crossover_k": lambda r: fmt(r.get("crossover_k", math.nan), 0),
                "ppl_base": lambda r: fmt(r.get("ppl_base", math.nan)),
                "entropy": lambda r: fmt(r.get("entropy", math.nan)),
                **{k: (lambda r, k=k: _pass_cell(r, k)) for k in pass_keys + valid_keys},
                **{c: (lambda r, c=c: fmt(r.get(c, math.nan), 0)) for c in cov + trans}}
    pred_keys = sorted((c for c in df.columns if PRED_RE.match(c)),
                       key=lambda c: int(PRED_RE.match(c).group(1)))
    names.update({c: c.replace("_pred", " (predicted)") for c in pred_keys})
    cells_of.update({c: (lambda r, c=c: _pass_cell(r, c)) for c in pred_keys})
    # Two tables (three with predictions), so each fits a 1280 px page; the CSV keeps every
    # column at full precision.
    groups = [["step", "problems"] + pass_keys + valid_keys,
              ["step", "delta_se", "crossover_k", "ppl_base", "entropy"] + cov + trans]
    if pred_keys:
        groups.append(["step"] + pred_keys)
    tables = []
    for group in groups:
        head = "".join(f"<th>{html.escape(names.get(c, c))}</th>" for c in group)
        body = ["<tr>" + "".join(f"<td>{cells_of[c](r)}</td>" for c in group) + "</tr>"
                for _, r in df.iterrows()]
        tables.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")
    if "settings" in df.columns:  # what produced each row: a result is reused only if it matches
        rows = "".join(f"<tr><td>{cells_of['step'](r)}</td><td class='l'>"
                       f"{html.escape(str(r['settings']))}</td></tr>" for _, r in df.iterrows())
        tables.append(f"<table><tr><th>step</th><th>probed with</th></tr>{rows}</table>")
    return "".join(tables)


def dataset_section(data: RunData, dataset: str, out_dir: Path) -> tuple[str, list[Path]]:
    """Summary table, notes on what was skipped and why, and all figures for one dataset."""
    steps = data.steps(dataset)
    ok = {None: True, "steps": len(steps) > 1, "base": 0 in steps and len(steps) > 1}
    notes = []
    if steps == [0]:
        notes.append("Only the base model (step 0) has been probed: comparison plots "
                     "(coverage, transitions, pass and entropy over steps) are skipped.")
    elif 0 not in steps:
        notes.append("No base-model probe (step 0): coverage vs base, delta_se and "
                     "crossover_k are skipped.")
    df = summary(data, dataset)
    df.to_csv(out_dir / f"{slug(dataset)}_summary.csv", index=False)
    kmax = int(df["k_max"].iloc[0])
    if kmax < 256:
        notes.append(f"Fewest samples per problem is n={kmax}, so pass@k stops at k={kmax}.")
    if df["n_problems"].max() < APPROX_BELOW:
        notes.append(f"Only {int(df['n_problems'].max())} problems: the 95% bands of pass@k for "
                     f"k > 1 are approximate below {APPROX_BELOW} problems (they can "
                     "under-cover when most problems are always solved).")
    figs, paths = [], []
    for stem, caption, build, needs in FIGURES:
        if not ok[needs]:
            continue
        fig = build(data, dataset)
        if fig is None:
            if stem not in OPTIONAL:
                notes.append(f"{stem} figure skipped: "
                             f"{UNMEASURED.get(stem, 'input not measured')}.")
            continue
        path = save(fig, out_dir / f"{slug(dataset)}_{stem}.png")
        paths.append(path)
        figs.append(figure_html(path, caption))
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    nprob = df["n_problems"].max()
    section = (f"<h2>{html.escape(dataset)}</h2><p class='meta'>{nprob} problems, checkpoints "
               f"{', '.join(map(str, steps))}</p>{note_html}{summary_html(df)}{''.join(figs)}")
    return section, paths


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write RUN_DIR/report/index.html (+ PNGs and per-dataset summary CSVs); return its path."""
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    data = load_run(run_dir)
    sections = [dataset_section(data, ds, out)[0] for ds in data.datasets]
    probed = sorted({s for ds in data.datasets for s in data.steps(ds)})
    sections.insert(0, training_section(run_dir, out, probed))
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    legend = ("pass@k is the unbiased estimator over n samples; CIs are 95% Student-t "
              "intervals over problems (paired over problems for differences). pass@k "
              "(predicted), k beyond n: from the samples drawn under a zero-inflated "
              "beta-binomial prior fitted over the problems (probes/beyond.py), its 95% band "
              "including the prior's uncertainty. delta_se: the study's sampling-efficiency gap, base pass@k_max minus "
              "policy pass@1. crossover_k: smallest k where the base model's pass@k reaches "
              "the policy's (dash: no crossover up to k_max). ppl_base: mean over the "
              "checkpoint's responses of each response's perplexity under the base model, "
              "exp(mean NLL of its tokens) as in the study (ppl_base_pooled in the CSV pools "
              "all tokens instead). entropy: token-weighted mean "
              "per-token policy entropy in nats. both / base_only / policy_only / neither: "
              "number of problems solved (any of n samples correct) by base and this "
              "checkpoint; gained / lost vs prev: problems newly solved / no longer solved "
              "since the previous checkpoint.")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>rlboundary report: "
            f"{html.escape(run_dir.name)}</title><style>{CSS}</style></head><body>"
            f"<h1>Reasoning-boundary report: {html.escape(run_dir.name)}</h1>"
            f"<p class='meta'>{html.escape(str(run_dir.resolve()))} &middot; generated {now}"
            f"</p><p class='meta'>{html.escape(legend)}</p>{''.join(sections)}</body></html>")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
