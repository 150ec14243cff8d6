"""`rlboundary report --compare DIR...`: several runs that share a base model on one page.

The study's Table 2 in shape: per run (its last probed checkpoint), pass@1 and pass@k_max with
95% bands over problems, their differences from the base model paired over the same problems,
delta_SE (base pass@k_max minus the run's pass@1), base-model perplexity, entropy, the ledger
counts and the crossover k. Figures: every run's pass@k curve beside the base's (log-k axis),
pass@1 and pass@k_max over training steps per run, and the runs' ledgers side by side. The same
table goes to W&B as one `wandb.Table` in a run of its own, grouped with the sweep's runs.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from rlboundary.errors import UserError
from rlboundary.fileio import write_text
from rlboundary.report import compare_plots as plots
from rlboundary.report.fragments import CSS, figure_html, fmt, slug
from rlboundary.report.load import RunData, curve, k_grid, k_max, load_run
from rlboundary.report.plot_style import save
from rlboundary.report.seeds import seed_groups, seed_lines, seed_table
from rlboundary.report.study import LEDGER_LABELS, versus_base

BASE = "base model"


def find_runs(paths: list[str | Path]) -> dict[str, Path]:
    """{label: run directory} for every run under ``paths`` (a run directory holds ``probes/``).

    A path may be a run or a folder of runs (a sweep's directory, whose runs come in the order
    its jobs ran). Labels are the sweep job's name (``job.json``) or the path relative to the
    folder given. Raises ``UserError`` when a path is missing or holds no probed run.
    """
    runs: dict[str, Path] = {}
    for p in map(Path, paths):
        if not p.is_dir():
            raise UserError(f"not a directory: {p}")
        found = [p] if (p / "probes").is_dir() else [
            d.parent for d in p.rglob("probes") if d.is_dir() and "checkpoints" not in d.parts]
        if not found:
            raise UserError(f"{p}: no probed run in it (no probes/ folder)")
        jobs = {run: _job_record(run) for run in found}
        for run in sorted(found, key=lambda r: (jobs[r].get("job", 1 << 30), str(r))):
            label = jobs[run].get("name") or (str(run.relative_to(p)) if run != p else run.name)
            runs[label if label not in runs else str(run)] = run
    return runs


def _job_record(run: Path) -> dict:
    """The sweep's ``job.json`` of a run ({} for a run outside a sweep)."""
    job = run / "job.json"
    return json.loads(job.read_text()) if job.exists() else {}


def load_runs(paths: list[str | Path]) -> tuple[dict[str, Path], dict[str, RunData], list[str]]:
    """(runs as ``find_runs``, their loaded data, the datasets all of them probed); raises
    ``UserError`` when they share no dataset."""
    runs = find_runs(paths)
    datas = {label: load_run(run) for label, run in runs.items()}
    datasets = sorted(set.intersection(*(set(d.datasets) for d in datas.values())))
    if not datasets:
        raise UserError("the runs share no probed dataset")
    return runs, datas, datasets


def _same_base(datas: dict[str, RunData], dataset: str) -> pd.DataFrame:
    """The base model's probe table every run shares; ``UserError`` naming the odd run out."""
    ref_label, ref = None, None
    for label, data in datas.items():
        if 0 not in data.steps(dataset):
            raise UserError(f"run {label}: no base-model probe (step 0) of {dataset}")
        tbl = data.table(dataset, 0)[["problem_id", "n", "c"]].sort_values("problem_id")
        if ref is None:
            ref_label, ref = label, tbl.reset_index(drop=True)
        elif not tbl.reset_index(drop=True).equals(ref):
            raise UserError(f"runs {ref_label} and {label} were not probed against the same "
                            f"base model on {dataset} (their step-0 tables differ)")
    return next(iter(datas.values())).table(dataset, 0)


def compare_table(datas: dict[str, RunData], dataset: str, n_boot: int = 2000) -> pd.DataFrame:
    """One row for the base model, then one per run at its last probed step (numbers)."""
    base = _same_base(datas, dataset)
    k = min(k_max(d.problems[d.problems["dataset"] == dataset]) for d in datas.values())
    rows = [{"run": BASE, "step": 0, **versus_base(base, base, k, n_boot=n_boot),
             **beyond_study(base)}]
    for label, data in datas.items():
        last = data.steps(dataset)[-1]
        cur = data.table(dataset, last)
        rows.append({"run": label, "step": last,
                     **versus_base(base, cur, k, n_boot=n_boot), **beyond_study(cur)})
    df = pd.DataFrame(rows)
    df.loc[0, [c for c in df.columns if c.startswith("diff@")] + ["crossover_k"]] = np.nan
    df.attrs.update(k=k, problems=len(base))
    return df


#: cover@τ columns of the comparison (the probe's default grid has more; the CSV keeps these).
COMPARE_TAUS = (0.1, 0.5, 0.9)
ANSWER_KEYS = ("answers_distinct", "answers_entropy")


def beyond_study(table: pd.DataFrame) -> dict[str, float]:
    """cover@τ at :data:`COMPARE_TAUS` and the answer-diversity means of one probe table (NaN
    where a stored result predates the answers probe)."""
    from rlboundary.probes import PROBES

    row = PROBES.get("cover")(table, taus=COMPARE_TAUS)
    answers = PROBES.get("answers")(table)
    row.update({key: answers.get(key, float("nan")) for key in ANSWER_KEYS})
    return row


def over_steps(datas: dict[str, RunData], dataset: str, k: int) -> dict[str, pd.DataFrame]:
    """{run: one row per probed step with pass@1 and pass@k and their 95% bands}."""
    out = {}
    for label, data in datas.items():
        rows = []
        for step in data.steps(dataset):
            row = {"step": step}
            for _, r in curve(data.table(dataset, step), sorted({1, k})).iterrows():
                kk = int(r["k"])
                row.update({f"pass@{kk}": r["pass"], f"pass@{kk}_lo": r["lo"],
                            f"pass@{kk}_hi": r["hi"]})
            rows.append(row)
        out[label] = pd.DataFrame(rows)
    return out


def _band_cell(r: pd.Series, key: str, signed: bool = False) -> str:
    if pd.isna(r.get(key)):
        return "&mdash;"
    f = (lambda v: f"{v:+.3f}") if signed else (lambda v: f"{v:.3f}")
    return (f"{f(r[key])} <span class='ci'>[{f(r[key + '_lo'])}, {f(r[key + '_hi'])}]</span>")


def table_html(df: pd.DataFrame) -> str:
    """The comparison as three narrow tables (fits a 1280 px page; the CSV has every column):
    pass@k, the study's other measures, and cover@τ with answer diversity."""
    k = df.attrs["k"]
    first = [("run", lambda r: html.escape(str(r["run"]))), ("step", lambda r: str(r["step"]))]
    groups = [first + [(f"pass@{kk}", lambda r, kk=kk: _band_cell(r, f"pass@{kk}"))
                       for kk in (1, k)]
              + [(f"diff@{kk}", lambda r, kk=kk: _band_cell(r, f"diff@{kk}", True))
                 for kk in (1, k)],
              first + [(f"delta_se@{k}", lambda r: fmt(r["delta_se"])),
                       ("crossover_k", lambda r: fmt(r["crossover_k"], 0)),
                       ("ppl_base", lambda r: fmt(r["ppl_base"])),
                       ("entropy", lambda r: fmt(r["entropy"]))]
              + [(label, lambda r, key=key: str(int(r[key])))
                 for key, label in LEDGER_LABELS.items()],
              first + [(f"cover@{t:g}", lambda r, t=t: fmt(r.get(f"cover@{t:g}", np.nan)))
                       for t in COMPARE_TAUS]
              + [(key.replace("answers_", "answers "), lambda r, key=key: fmt(r.get(key,
                                                                                  np.nan)))
                 for key in ANSWER_KEYS]]
    out = []
    for cols in groups:
        head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in cols)
        body = "".join("<tr>" + "".join(
            f"<td{' class=l' if name == 'run' else ''}>{cell(r)}</td>" for name, cell in cols)
            + "</tr>" for _, r in df.iterrows())
        out.append(f"<table><tr>{head}</tr>{body}</table>")
    return "".join(out)


def _base_curve(datas: dict[str, RunData], dataset: str, ks: list[int]) -> pd.DataFrame:
    return curve(next(iter(datas.values())).table(dataset, 0), ks)


def seeds_html(table: pd.DataFrame) -> str:
    """The across-seed table (``seeds.seed_table``) as HTML; empty when there is none."""
    if table.empty:
        return ""
    k = table.attrs["k"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (
        "runs (all but seed)", "seeds", "diff@1 mean [95% over seeds]", f"diff@{k} mean "
        "[95% over seeds]", f"diff@{k} per seed", f"seeds with diff@{k} CI < 0",
        "seeds with diff@1 CI > 0"))
    body = "".join(
        f"<tr><td class=l>{html.escape(str(r['group']))}</td><td>{int(r['seeds'])}</td>"
        f"<td>{_band_cell(r, 'diff@1', True)}</td><td>{_band_cell(r, f'diff@{k}', True)}</td>"
        f"<td>{r[f'diff@{k}_min']:+.3f} .. {r[f'diff@{k}_max']:+.3f}</td>"
        f"<td>{int(r[f'diff@{k}_below'])}</td><td>{int(r['diff@1_above'])}</td></tr>"
        for _, r in table.iterrows())
    return ("<h3>Across training seeds</h3><p class='meta'>runs whose sweep overrides differ "
            "only in seed; the interval is a Student-t 95% band over seeds (training noise "
            "included), the counts use each seed's own paired interval over problems.</p>"
            f"<table><tr>{head}</tr>{body}</table>")


def dataset_section(datas: dict[str, RunData], dataset: str, out: Path,
                    groups: dict[str, list[str]] | None = None) -> tuple[str, list[str]]:
    """(the dataset's HTML section, the across-seed lines); writes ``<dataset>_compare.csv``
    and, when runs differ only in seed, ``<dataset>_seeds.csv``."""
    df = compare_table(datas, dataset)
    k = df.attrs["k"]
    df.to_csv(out / f"{slug(dataset)}_compare.csv", index=False)
    seeds = seed_table(df, groups or {})
    if not seeds.empty:
        seeds.to_csv(out / f"{slug(dataset)}_seeds.csv", index=False)
    ks = k_grid(k)
    last = {label: curve(d.table(dataset, d.steps(dataset)[-1]), ks) for label, d in datas.items()}
    figs = [
        (plots.compare_curves_figure(_base_curve(datas, dataset, ks), last, dataset),
         "pass@k of each run's last checkpoint and of the base model (black dashed, hollow "
         "circles); bands are 95% CIs over problems."),
        (plots.compare_steps_figure(over_steps(datas, dataset, k), k, dataset,
                                    base=df.iloc[0]),
         f"pass@1 and pass@{k} at every probed step of each run (95% CI error bars); "
         "dashed lines mark the base model."),
        (plots.compare_ledger_figure(df.iloc[1:], dataset),
         "The solvability ledger of each run's last checkpoint against the base model "
         "(solved = at least one of n samples correct)."),
    ]
    html_figs = [figure_html(save(fig, out / f"{slug(dataset)}_compare_{i}.png"), cap)
                 for i, (fig, cap) in enumerate(figs)]
    return (f"<h2>{html.escape(dataset)}</h2><p class='meta'>{len(datas)} runs, "
            f"{df.attrs['problems']} problems, k_max = {k}</p>"
            f"{table_html(df)}{seeds_html(seeds)}{''.join(html_figs)}",
            [f"{dataset}: {line}" for line in seed_lines(seeds)])


def write_compare(paths: list[str | Path], out_dir: str | Path | None = None) -> Path:
    """Write the comparison page (``index.html`` + PNGs + one CSV per dataset); return its path.

    ``out_dir`` defaults to ``<first path>/compare``. Runs that differ only in seed are also
    summarised across seeds (``report/seeds.py``; ``seeds.txt`` holds those lines, which the
    CLI prints). Raises ``UserError`` when fewer than one run is found or the runs were not
    probed against the same base model.
    """
    runs, datas, datasets = load_runs(paths)
    out = Path(out_dir) if out_dir else Path(paths[0]) / "compare"
    out.mkdir(parents=True, exist_ok=True)
    groups = seed_groups(runs)
    parts = [dataset_section(datas, ds, out, groups) for ds in datasets]
    sections = [html_part for html_part, _ in parts]
    lines = [line for _, part_lines in parts for line in part_lines]
    if lines:
        write_text(str(out / "seeds.txt"), "\n".join(lines) + "\n")
    elif (out / "seeds.txt").exists():
        (out / "seeds.txt").unlink()
    rows = "".join(f"<tr><td class=l>{html.escape(label)}</td><td class=l>{html.escape(str(p))}"
                   "</td></tr>" for label, p in runs.items())
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>rlboundary comparison"
            f"</title><style>{CSS}</style></head><body><h1>Reasoning-boundary comparison: "
            f"{len(runs)} runs</h1><p class='meta'>generated {now}. Each run at its last "
            "probed checkpoint; bands are 95% Student-t intervals over problems, diff = run - "
            "base paired over the same problems; delta_se = base pass@k_max - run pass@1; "
            "ppl_base = mean per-response perplexity under the base model; entropy in nats per "
            "token.</p>" + "".join(sections)
            + f"<h2>Runs</h2><table><tr><th>run</th><th>directory</th></tr>{rows}</table>"
            "</body></html>")
    index = out / "index.html"
    write_text(str(index), page)
    return index


def log_compare_wandb(paths: list[str | Path], project: str, group: str | None = None) -> str:
    """Log the comparison table(s) to one W&B run (``job_type="compare"``, grouped with the
    sweep's runs); returns the run's local directory."""
    from rlboundary.report.wandb_log import import_wandb, resolve_mode

    wandb = import_wandb()
    _, datas, datasets = load_runs(paths)
    group = group or Path(paths[0]).name
    run = wandb.init(project=project, group=group, job_type="compare", name=f"{group}/compare",
                     mode=resolve_mode(), settings=wandb.Settings(console="off"))
    for ds in datasets:
        df = compare_table(datas, ds)
        run.log({f"compare/{ds}": wandb.Table(dataframe=df.astype({"run": str}))})
    local = str(Path(run.dir).parent)
    run.finish()
    return local
