"""`rlboundary report --compare DIR...`: several runs that share a base model on one page.

The study's Table 2 in shape: per run (its last probed checkpoint), pass@1 and pass@k_max with
95% bands over problems, their differences from the base model paired over the same problems,
delta_SE (base pass@k_max minus the run's pass@1), base-model perplexity, entropy, the ledger
counts and the crossover k. Figures: every run's pass@k curve beside the base's (log-k axis),
pass@1 and pass@k_max over training steps per run, and the runs' ledgers side by side. The same
table goes to W&B as one `wandb.Table` in a run of its own, grouped with the sweep's runs.

Runs whose base probes differ only in sampling (a probe sweep over `sampling.temperature`,
`rlboundary probe -m`) share the page too: each is compared with the base sampled like it,
one base row per setting.
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
from rlboundary.report.load import RunData, curve, k_grid, k_max, load_run, predicted_curves
from rlboundary.report.plot_style import save
from rlboundary.report.seeds import seed_groups, seed_lines, seed_table
from rlboundary.report.study import LEDGER_LABELS, versus_base
from rlboundary.results.provenance import ADDED_LATER

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
            d.parent for d in p.rglob("probes") if d.is_dir() and "checkpoints" not in d.parts
            and "control" not in d.relative_to(p).parts]  # a run's temperature controls
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


def _base_table(data: RunData, label: str, dataset: str) -> pd.DataFrame:
    if 0 not in data.steps(dataset):
        raise UserError(f"run {label}: no base-model probe (step 0) of {dataset}")
    tbl = data.table(dataset, 0)[["problem_id", "n", "c"]].sort_values("problem_id")
    return tbl.reset_index(drop=True)


def _base_settings(data: RunData, dataset: str) -> dict:
    """The flattened provenance of a run's base probe of ``dataset`` ({} when unrecorded)."""
    s = data.settings
    if s.empty or "step" not in s:
        return {}
    hit = s[(s["dataset"] == dataset) & (s["step"] == 0)]
    return {k: v for k, v in hit.iloc[0].items() if k not in ("dataset", "step", "settings",
                                                             "checkpoint")
            and not (isinstance(v, float) and np.isnan(v))} if len(hit) else {}


def base_groups(datas: dict[str, RunData], dataset: str) -> dict[str, list[str]]:
    """{base label: run labels}: the runs grouped by the base-model probe they share.

    One group (the usual case) is labelled ``base model``. Several are allowed only when
    their base probes differ in sampling settings alone (a sweep of ``sampling.temperature``:
    each run is compared with the base sampled like it), labelled by those settings, e.g.
    ``base model (sampling.temperature=0.6)``. Raises ``UserError`` naming two runs whose base
    probes differ otherwise (another base model, other problems, n, seed or verifier).
    """
    def sampled(settings: dict) -> dict:
        return {k: v for k, v in settings.items() if k.startswith("sampling.")}

    # a base probe is its results and how it was sampled: two temperatures whose results
    # happen to coincide (no problem solved at either) are still two bases
    groups: list[tuple[pd.DataFrame, dict, list[str]]] = []
    for label, data in datas.items():
        tbl, mine = _base_table(data, label, dataset), _base_settings(data, dataset)
        for ref, theirs, members in groups:  # unrecorded settings ({}) match any sampling
            a, b = sampled(mine), sampled(theirs)
            if tbl.equals(ref) and (a == b or not a or not b):
                members.append(label)
                break
        else:
            groups.append((tbl, mine, [label]))
    if len(groups) == 1:
        return {BASE: groups[0][2]}
    settings = [theirs for _, theirs, _ in groups]
    # keys recorded only by a later rlboundary (ADDED_LATER) say nothing where one run lacks them
    keys = set().union(*settings) - {k for k in ADDED_LATER if not all(k in s for s in settings)}
    differ = sorted(k for k in keys if len({repr(s.get(k)) for s in settings}) > 1)
    if not differ or not all(k.startswith("sampling.") for k in differ):
        a, b = groups[0][2][0], groups[1][2][0]
        why = f" ({', '.join(differ)} differ)" if differ else " (their step-0 tables differ)"
        raise UserError(f"runs {a} and {b} were not probed against the same base model on "
                        f"{dataset}{why}")
    labels = [f"{BASE} ({', '.join(f'{k}={s.get(k)}' for k in differ)})" for s in settings]
    if len(set(labels)) < len(labels):  # two bases alike in settings, unlike in results
        raise UserError(f"runs {groups[0][2][0]} and {groups[1][2][0]} were not probed against "
                        f"the same base model on {dataset} (their step-0 tables differ)")
    return {label: members for label, (_, _, members) in zip(labels, groups)}


def compare_table(datas: dict[str, RunData], dataset: str, n_boot: int = 2000) -> pd.DataFrame:
    """One row per base model (see ``base_groups``: usually one) followed by one row per run
    compared with it, at the run's last probed step (numbers). ``attrs``: ``k``,
    ``problems``, ``bases`` ({base label: run labels})."""
    groups = base_groups(datas, dataset)
    k = min(k_max(d.problems[d.problems["dataset"] == dataset]) for d in datas.values())
    rows = []
    for base_label, members in groups.items():
        base = datas[members[0]].table(dataset, 0)
        rows.append({"run": base_label, "step": 0, **versus_base(base, base, k, n_boot=n_boot),
                     **beyond_study(base)})
        for label in members:
            data = datas[label]
            last = data.steps(dataset)[-1]
            cur = data.table(dataset, last)
            rows.append({"run": label, "step": last,
                         **versus_base(base, cur, k, n_boot=n_boot), **beyond_study(cur)})
    df = pd.DataFrame(rows)
    is_base = df["run"].isin(list(groups))
    df.loc[is_base, [c for c in df.columns if c.startswith("diff@")]
           + ["crossover_k", "diff_lo_min", "diff_hi_max"]] = np.nan
    df.loc[is_base, "vs_base"] = ""
    df.attrs.update(k=k, problems=len(datas[next(iter(groups.values()))[0]].table(dataset, 0)),
                    bases=groups)
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
                 for kk in (1, k)]
              + [("vs base (paired, every k)", lambda r: html.escape(str(r["vs_base"])))],
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
    bases = df.attrs["bases"]
    base_curves = {b: curve(datas[members[0]].table(dataset, 0), ks)
                   for b, members in bases.items()}
    by_run = df.set_index("run")
    predicted = {b: p for b, members in bases.items()
                 if (p := predicted_curves(datas[members[0]], dataset).get(0)) is not None}
    predicted.update({label: p for label, d in datas.items() if (p := predicted_curves(
        d, dataset).get(d.steps(dataset)[-1])) is not None})
    which = ("the base model (black dashed, hollow circles)" if len(bases) == 1 else
             "each run's base model, sampled like it (dashed, hollow circles, in its run's "
             "colour)")
    figs = [
        (plots.compare_curves_figure(base_curves, last, dataset, bases, predicted),
         f"pass@k of each run's last checkpoint and of {which}; bands are 95% CIs over "
         "problems." + (" Thin dashed beyond the samples drawn: pass@k predicted from them "
                        "(zero-inflated beta-binomial prior, probes/beyond.py), light bands "
                        "include the prior's uncertainty." if predicted else "")),
        (plots.compare_steps_figure(over_steps(datas, dataset, k), k, dataset,
                                    {b: by_run.loc[b] for b in bases}, bases),
         f"pass@1 and pass@{k} at every probed step of each run (95% CI error bars); "
         "dashed lines mark the base model" + ("." if len(bases) == 1 else "s.")),
        (plots.compare_ledger_figure(df[~df["run"].isin(list(bases))], dataset),
         "The solvability ledger of each run's last checkpoint against "
         + ("the base model" if len(bases) == 1 else "its base model")
         + " (solved = at least one of n samples correct)."),
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
    probed against the same base model (``base_groups``).
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
