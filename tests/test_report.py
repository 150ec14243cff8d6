"""Report and W&B logging on a synthetic run directory.

The run is built so the policy is sharper than the base (solves easy problems every time,
drops hard ones), which is the situation the report exists to show.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import (
    DATASETS,
    N_PROBLEMS,
    make_run,
    wandb_summary_rules,
)

from rlboundary.report import load_run, write_report
from rlboundary.report.load import k_grid, summary
from rlboundary.results.metrics import load_metrics

FIGS = ("pass_at_k", "pass_over_steps", "coverage", "transitions", "accuracy_hist",
        "perplexity", "entropy", "cover")


def _row_cells(html: str, dataset: str, step: int) -> list[str]:
    """Text of the summary cells for one (dataset, step): the summary is split into tables
    that each start with the step column; their rows are joined, the step given once."""
    section = html.split(f"<h2>{dataset}</h2>", 1)[1].split("<h2>", 1)[0]
    out: list[str] = []
    for table in re.findall(r"<table>(.*?)</table>", section):
        for row in re.findall(r"<tr>(.*?)</tr>", table):
            cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", row)]
            if cells and cells[0].split()[0] == str(step):
                out += cells if not out else cells[1:]
    if not out:
        raise AssertionError(f"no row for step {step} in {dataset}")
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def report(run_dir) -> Path:
    return write_report(run_dir)


def test_load_run_reads_all_tables(run_dir):
    data = load_run(run_dir)
    assert data.datasets == list(DATASETS)
    assert data.steps("arith") == [0, 10, 20]
    assert len(data.problems) == 2 * 3 * N_PROBLEMS
    assert data.has_validity("arith") and not data.has_validity("math")
    m = load_metrics(run_dir)  # the torn last line is skipped, not fatal
    assert len(m) == 6 and set(m["dataset"]) == set(DATASETS)


def test_k_grid_stops_at_smallest_n():
    assert k_grid(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert k_grid(24) == [1, 2, 4, 8, 16, 24]
    assert k_grid(1) == [1]


def test_report_writes_html_and_figures(report, run_dir):
    assert report == run_dir / "report" / "index.html"
    html = report.read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    for ds in DATASETS:
        for stem in FIGS:
            png = run_dir / "report" / f"{ds}_{stem}.png"
            assert png.exists() and png.stat().st_size > 5000, png
    assert (run_dir / "report" / "arith_validity.png").stat().st_size > 5000
    assert not (run_dir / "report" / "math_validity.png").exists()  # no trace check there


def test_summary_numbers_match_independent_computation(report, run_dir):
    html = report.read_text()
    base = pd.read_parquet(run_dir / "probes" / "arith" / "step_00000000.parquet")
    pol = pd.read_parquet(run_dir / "probes" / "arith" / "step_00000020.parquet")
    cells = _row_cells(html, "arith", 20)
    pass1 = (pol.c / pol.n).mean()
    pass32 = (pol.c > 0).mean()  # k = n: solved iff any sample is correct
    assert cells[2].startswith(f"{pass1:.3f}")
    assert cells[4].startswith(f"{pass32:.3f}")  # columns: step, problems, @1, @16, @32
    both = int(((base.c > 0) & (pol.c > 0)).sum())
    policy_only = int(((base.c == 0) & (pol.c > 0)).sum())
    base_only = int(((base.c > 0) & (pol.c == 0)).sum())
    ppl = pol.ppl_base_mean.mean()  # per response: every problem has n scored responses
    w = pol.mean_len * pol.n  # entropy is token-weighted over problems
    assert f"{ppl:.3f}" in cells and f"{(pol.entropy * w).sum() / w.sum():.3f}" in cells
    tail = cells[-6:]  # both, base_only, policy_only, neither, gained, lost
    assert tail[:3] == [str(both), str(base_only), str(policy_only)]
    assert int(tail[3]) == N_PROBLEMS - both - base_only - policy_only
    delta = (base.c > 0).mean() - pass1  # the study's ΔSE at k = n = 32
    assert f"{delta:.3f}" in cells  # three decimals, like every other column


def test_summary_sharpening_shape(run_dir):
    s = summary(load_run(run_dir), "arith").set_index("step")
    assert s.loc[20, "pass@1"] > s.loc[0, "pass@1"]
    assert s.loc[20, "entropy"] < s.loc[0, "entropy"]
    assert (s["pass@1_lo"] <= s["pass@1"]).all() and (s["pass@1"] <= s["pass@1_hi"]).all()
    assert "valid_pass@1" in s.columns and s.loc[20, "valid_pass@1"] <= s.loc[20, "pass@1"]
    assert s.loc[20, "train/reward"] == pytest.approx(2.0)  # filled from metrics.jsonl


def test_base_only_run_without_ppl_or_entropy(tmp_path):
    run = make_run(tmp_path, steps=(0,), with_nll=False)
    for ds in DATASETS:  # a writer that never measured entropy
        f = run / "probes" / ds / "step_00000000.parquet"
        pd.read_parquet(f).drop(columns=["entropy"]).to_parquet(f)
    html = write_report(run).read_text()
    assert "Only the base model (step 0) has been probed" in html
    out = run / "report"
    assert (out / "arith_pass_at_k.png").stat().st_size > 0
    assert (out / "arith_accuracy_hist.png").stat().st_size > 0
    for stem in ("coverage", "transitions", "pass_over_steps", "perplexity", "entropy"):
        assert not (out / f"arith_{stem}.png").exists(), stem
    assert "perplexity figure skipped" in html and "validity figure skipped" in html


def test_wandb_offline_replay(run_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from rlboundary.report.wandb_log import log_run_dir, resolve_mode

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode() == "offline" and resolve_mode("online") == "online"
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    lg = log_run_dir(run_dir, project="rlboundary-test")
    assert lg.local_dir.is_dir() and str(lg.local_dir).startswith(str(tmp_path))
    for ds in DATASETS:
        assert {f"probe/{ds}/pass@1", f"probe/{ds}/pass@32_hi", f"probe/{ds}/ledger",
                f"probe/{ds}/pass@k_curve/step_00000020"} <= lg.keys
    assert {"probe/arith/coverage/policy_only", "probe/math/gained", "probe/arith/valid_pass@1",
            "probe/arith/transitions/lost", "probe/arith/coverage/n_both"} <= lg.keys
    records = b"".join(p.read_bytes() for p in lg.local_dir.glob("*.wandb"))
    assert b"probe/arith/pass@1" in records and b"probe/math/delta_se" in records
    # The run summary holds the headline metrics only, pass@1 first, in HEADLINE's order.
    summary = wandb_summary_rules(lg.local_dir)
    for ds in DATASETS:
        assert summary[f"probe/{ds}/*"] == "none"
        heads = [k for k, v in summary.items() if k.startswith(f"probe/{ds}/") and v == "last"]
        assert heads[:5] == [f"probe/{ds}/{m}" for m in
                             ("pass@1", "pass@32", "delta_se", "ppl_base", "entropy")]
        assert heads == [k for k in lg.summary_keys if k.startswith(f"probe/{ds}/")]


def test_wandb_live_hook_logs_one_step(run_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from rlboundary.report.wandb_log import WandbLogger

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # -> offline automatically
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    with WandbLogger("rlboundary-test", name="live") as lg:
        assert lg.run.settings.mode == "offline"
        lg.log_run_step(run_dir, 10)
    assert "probe/math/pass@k_curve/step_00000010" in lg.keys
    assert not any("step_00000020" in k for k in lg.keys)


def test_checkpoints_with_different_n_share_one_k_grid(tmp_path):
    run = make_run(tmp_path, datasets=("arith",))
    f = run / "probes" / "arith" / "step_00000010.parquet"
    df = pd.read_parquet(f)
    df["n"], df["c"] = 24, np.minimum(df["c"], 24)  # this checkpoint drew fewer samples
    df["c_valid"] = np.minimum(df["c_valid"], df["c"])
    df.to_parquet(f)
    s = summary(load_run(run), "arith").set_index("step")
    assert (s["k_max"] == 24).all()
    assert s[["pass@24", "pass@24_lo", "pass@24_hi", "valid_pass@24_hi"]].notna().all().all()
    assert s.loc[10, "pass@24"] == pytest.approx((df.c > 0).mean())
    html = write_report(run).read_text()
    assert "pass@k stops at k=24" in html
