"""Report and W&B logging on a synthetic run directory.

The run is built so the policy is sharper than the base (solves easy problems every time,
drops hard ones), which is the situation the report exists to show.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlboundary import probes
from rlboundary.report import load_run, write_report
from rlboundary.report.load import k_grid, summary
from rlboundary.results.metrics import load_metrics

N_PROBLEMS, N_SAMPLES = 50, 32
DATASETS = ("arith", "math")
FIGS = ("pass_at_k", "pass_over_steps", "coverage", "transitions", "accuracy_hist",
        "perplexity", "entropy", "cover")


def _probe_table(rng, dataset: str, step: int, p_base: np.ndarray, *, validity: bool,
                 with_nll: bool = True) -> pd.DataFrame:
    """One checkpoint's per-problem table; sharpness grows with the step."""
    logit = np.log(p_base / (1 - p_base))
    sharp = 1.0 + step / 10.0
    p = 1 / (1 + np.exp(-(sharp * logit + 0.5 * step / 10)))
    c = rng.binomial(N_SAMPLES, p)
    ntok = rng.integers(2000, 4000, size=len(p))
    ppl = rng.gamma(6.0, 0.05 * (1 + step / 40), size=len(p)) + 1.0  # per-response mean
    spread = np.array([0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2])  # its quantiles q0 .. q100
    summ = {k: ppl * f if with_nll else np.nan
            for k, f in zip(probes.summary_keys("ppl_base"), spread)}
    return pd.DataFrame({
        "ppl_base_mean": ppl if with_nll else np.nan,
        "ppl_base_count": N_SAMPLES if with_nll else 0, **summ,
        "problem_id": [f"{dataset}-{i:03d}" for i in range(len(p))],
        "dataset": dataset, "step": step, "checkpoint": "base" if step == 0 else f"step_{step}",
        "difficulty": rng.uniform(1, 5, size=len(p)),
        "n": N_SAMPLES, "c": c,
        "c_valid": rng.binomial(c, 0.85) if validity else -1,
        "n_timeout": 0, "n_truncated": rng.integers(0, 3, size=len(p)),
        "mean_len": ntok / N_SAMPLES,
        "entropy": rng.gamma(4.0, 0.1 / (1 + step / 10), size=len(p)),
        "nll_base_sum": ntok * rng.gamma(6.0, 0.05 * (1 + step / 40), size=len(p))
        if with_nll else np.nan,
        "n_tokens": ntok if with_nll else 0,
    })


def make_run(root: Path, steps=(0, 10, 20), datasets=DATASETS, seed: int = 0,
             with_nll: bool = True) -> Path:
    """Write probes/<dataset>/step_*.parquet and metrics.jsonl; c_valid only on 'arith'."""
    rng = np.random.default_rng(seed)
    lines = []
    for ds in datasets:
        p_base = rng.beta(0.6, 0.9, size=N_PROBLEMS).clip(1e-3, 1 - 1e-3)
        for s in steps:
            df = _probe_table(rng, ds, s, p_base, validity=ds == "arith", with_nll=with_nll)
            out = root / "probes" / ds / f"step_{s:08d}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            df.to_parquet(out)
            lines.append({"step": s, "dataset": ds, "pass@1": float((df.c / df.n).mean()),
                          "train/reward": 0.1 * s})
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"step": 30, "datas'  # torn last line
    (root / "metrics.jsonl").write_text(text)
    return root


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


def wandb_records(path) -> list[bytes]:
    """The records of a .wandb file: W&B's 7-byte header, then LevelDB's log format (32 KiB
    blocks of chunks, each a 7-byte header: crc32 u32, length u16, type 1..4 = full, first,
    middle, last)."""
    import struct

    raw, out, part, pos = path.read_bytes(), [], b"", 7
    while pos + 7 <= len(raw):
        left = 32768 - (pos % 32768)
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        chunk, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        part = chunk if kind in (1, 2) else part + chunk
        if kind in (1, 4):
            out.append(part)
    return out


def wandb_typed(local_dir, kind: str) -> list:
    """The ``kind`` parts (``metric``, ``run``, ...) of an offline run's records, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = []
    for path in local_dir.glob("*.wandb"):
        for data in wandb_records(path):
            rec = pb.Record()
            rec.ParseFromString(data)
            if rec.WhichOneof("record_type") == kind:
                out.append(getattr(rec, kind))
    return out


def wandb_summary_rules(local_dir) -> dict[str, str]:
    """{metric name or glob: summary rule}, in order, from an offline run's define_metric
    records."""
    return {m.name or m.glob_name: "none" if m.summary.none else "last" if m.summary.last
            else "" for m in wandb_typed(local_dir, "metric")}


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


def _twin_runs(root: Path) -> tuple[Path, Path]:
    """Two runs probed against one base model: B has A's step-0 tables, its own later steps."""
    a = make_run(root / "sweep" / "a", seed=0)
    b = make_run(root / "sweep" / "b", seed=1)
    for ds in DATASETS:
        base = a / "probes" / ds / "step_00000000.parquet"
        (b / "probes" / ds / base.name).write_bytes(base.read_bytes())
    return a, b


def test_compare_table_against_the_shared_base(tmp_path):
    from rlboundary.report.compare import compare_table, write_compare

    a, b = _twin_runs(tmp_path)
    index = write_compare([tmp_path / "sweep"])
    assert index == tmp_path / "sweep" / "compare" / "index.html"
    html = index.read_text()
    assert html.count("<img") == 3 * len(DATASETS) and ">a<" in html and ">b<" in html
    df = pd.read_csv(index.parent / "arith_compare.csv")
    assert list(df["run"]) == ["base model", "a", "b"] and list(df["step"]) == [0, 20, 20]
    base = pd.read_parquet(a / "probes" / "arith" / "step_00000000.parquet")
    for label, run in (("a", a), ("b", b)):
        last = pd.read_parquet(run / "probes" / "arith" / "step_00000020.parquet")
        row = df[df["run"] == label].iloc[0]
        p1 = (last["c"] / last["n"]).mean()
        assert row["pass@1"] == pytest.approx(p1)
        assert row["diff@1"] == pytest.approx(p1 - (base["c"] / base["n"]).mean())
        assert row["pass@1_lo"] < row["pass@1"] < row["pass@1_hi"]
        assert row["delta_se"] == pytest.approx(df["pass@32"].iloc[0] - p1)
        solved, base_solved = last["c"] > 0, base["c"] > 0
        assert row["base_only"] == int((base_solved & ~solved).sum())
        assert row["policy_only"] == int((~base_solved & solved).sum())
        assert row[["both", "base_only", "policy_only", "neither"]].sum() == N_PROBLEMS
        # cover@τ: the share of problems with c/n >= τ; no answer columns in these tables
        assert row["cover@0.5"] == pytest.approx(((last["c"] / last["n"]) >= 0.5).mean())
        assert np.isnan(row["answers_distinct"])
    assert np.isnan(df["diff@1"].iloc[0])
    assert ">cover@0.5<" in html and ">answers distinct<" in html
    # The run's own report says the same about its last checkpoint.
    own = summary(load_run(a), "arith").set_index("step").loc[20]
    assert df.loc[1, "pass@32"] == pytest.approx(own["pass@32"])
    assert compare_table({"a": load_run(a)}, "arith").attrs["k"] == 32


def test_compare_leaves_out_a_runs_own_temperature_controls(tmp_path):
    """RUN_DIR/control/<target>_T<T*> are probe runs of the control, not runs of the sweep."""
    from rlboundary.report.compare import find_runs

    a, b = _twin_runs(tmp_path)
    make_run(a / "control" / "policy_T1.6420", seed=3)
    assert set(find_runs([tmp_path / "sweep"]).values()) == {a, b}


def test_compare_refuses_runs_with_different_base_models(tmp_path):
    from rlboundary.errors import UserError
    from rlboundary.report.compare import write_compare

    make_run(tmp_path / "x", seed=0)
    make_run(tmp_path / "y", seed=1)
    with pytest.raises(UserError, match="not probed against the same base model"):
        write_compare([tmp_path / "x", tmp_path / "y"])
    with pytest.raises(UserError, match="no probed run"):
        write_compare([tmp_path / "x" / "probes" / "arith"])


def test_compare_pairs_each_run_with_its_own_base_when_only_sampling_differs(tmp_path):
    """A temperature sweep: base probes that differ in sampling settings alone form one base
    row each, and every run's differences are paired with its own base; base probes that
    differ in anything else (here the base model's hash) are still refused, naming it."""
    from rlboundary.errors import UserError
    from rlboundary.report.compare import base_groups, compare_table

    datas = {}
    for label, seed, t in (("T=0.6", 0, 0.6), ("T=1.0", 1, 1.0)):
        data = load_run(make_run(tmp_path / label, seed=seed, datasets=("arith",)))
        data.settings = pd.DataFrame([{"dataset": "arith", "step": 0, "settings": "-",
                                       "base_sha": "aa", "sampling.temperature": t}])
        datas[label] = data
    groups = base_groups(datas, "arith")
    assert groups == {"base model (sampling.temperature=0.6)": ["T=0.6"],
                      "base model (sampling.temperature=1.0)": ["T=1.0"]}
    df = compare_table(datas, "arith", n_boot=200)
    assert list(df["run"]) == [*groups][:1] + ["T=0.6"] + [*groups][1:] + ["T=1.0"]
    for label, data in datas.items():
        base, last = data.table("arith", 0), data.table("arith", 20)
        row = df[df["run"] == label].iloc[0]
        assert row["diff@1"] == pytest.approx((last["c"] / last["n"]).mean()
                                              - (base["c"] / base["n"]).mean())
    assert df[df["run"].isin(list(groups))]["diff@1"].isna().all()
    # two bases alike in settings but not in results, beside a third: refused, not merged
    third = load_run(make_run(tmp_path / "T=1.0b", seed=2, datasets=("arith",)))
    third.settings = datas["T=1.0"].settings.copy()
    with pytest.raises(UserError, match="not probed against the same base model"):
        base_groups({**datas, "T=1.0b": third}, "arith")
    # bases of equal results (nothing solved at either temperature) but sampled differently
    # are still two bases
    same = load_run(make_run(tmp_path / "T=1.0c", seed=0, datasets=("arith",)))
    same.settings = datas["T=1.0"].settings.copy()
    assert base_groups({"T=0.6": datas["T=0.6"], "T=1.0c": same}, "arith") == {
        "base model (sampling.temperature=0.6)": ["T=0.6"],
        "base model (sampling.temperature=1.0)": ["T=1.0c"]}
    # a run whose base probe has no recorded settings joins the base of equal results, and a
    # key recorded only by a later rlboundary (sampler.drawn_dtype) is not a difference
    unrecorded = load_run(make_run(tmp_path / "old", seed=0, datasets=("arith",)))
    assert base_groups({"T=0.6": datas["T=0.6"], "old": unrecorded}, "arith") == {
        "base model": ["T=0.6", "old"]}
    newer = load_run(make_run(tmp_path / "T=1.0d", seed=1, datasets=("arith",)))
    newer.settings = datas["T=1.0"].settings.assign(**{"sampler.drawn_dtype": "float32"})
    assert [*base_groups({"T=0.6": datas["T=0.6"], "T=1.0d": newer}, "arith")] == [
        "base model (sampling.temperature=0.6)", "base model (sampling.temperature=1.0)"]
    datas["T=1.0"].settings["base_sha"] = "bb"
    with pytest.raises(UserError, match=r"not probed against the same base model on arith "
                                        r"\(base_sha, sampling.temperature differ\)"):
        base_groups(datas, "arith")


def test_compare_goes_to_wandb_as_one_table_in_the_sweeps_group(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from rlboundary.report.compare import log_compare_wandb

    _twin_runs(tmp_path)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    local = Path(log_compare_wandb([tmp_path / "sweep"], project="rlboundary-test"))
    records = [r for p in local.glob("*.wandb") for r in wandb_records(p)]
    runs = wandb_typed(local, "run")
    assert runs and runs[0].run_group == "sweep" and runs[0].job_type == "compare"
    assert any(b"compare/arith" in r for r in records)


def _seed_sweep(root: Path) -> dict[str, Path]:
    """A sweep of 3 GRPO seeds, 2 RLOO seeds and one PPO run, all against one base model."""
    jobs = [("algorithm=grpo", 0), ("algorithm=grpo", 1), ("algorithm=grpo", 2),
            ("algorithm=rloo", 0), ("algorithm=rloo", 1), ("algorithm=ppo", 0)]
    runs = {}
    for i, (algo, seed) in enumerate(jobs):
        name = f"{algo},seed={seed}"
        run = make_run(root / name, seed=10 + i, datasets=("arith",))
        if runs:
            base = next(iter(runs.values())) / "probes" / "arith" / "step_00000000.parquet"
            (run / "probes" / "arith" / base.name).write_bytes(base.read_bytes())
        overrides = ["progress=false", algo] + ([f"seed={seed}"] if algo != "algorithm=ppo"
                                                  else [])  # shared keys do not name groups
        (run / "job.json").write_text(json.dumps({"job": i, "name": name,
                                                  "overrides": overrides}))
        runs[name] = run
    return runs


def test_compare_groups_runs_that_differ_only_in_seed(tmp_path):
    from rlboundary.report.compare import compare_table, find_runs, write_compare
    from rlboundary.report.seeds import seed_groups, seed_table

    _seed_sweep(tmp_path / "sweep")
    runs = find_runs([tmp_path / "sweep"])
    groups = seed_groups(runs)
    assert groups == {"algorithm=grpo": ["algorithm=grpo,seed=0", "algorithm=grpo,seed=1",
                                         "algorithm=grpo,seed=2"],
                      "algorithm=rloo": ["algorithm=rloo,seed=0", "algorithm=rloo,seed=1"],
                      "algorithm=ppo,seed=0": ["algorithm=ppo,seed=0"]}
    df = compare_table({label: load_run(run) for label, run in runs.items()}, "arith")
    table = seed_table(df, groups)
    assert list(table["group"]) == ["algorithm=grpo", "algorithm=rloo"]  # PPO: one run
    grpo = table.iloc[0]
    d = df.set_index("run").loc[groups["algorithm=grpo"]]
    assert grpo["seeds"] == 3 and grpo["diff@32"] == pytest.approx(d["diff@32"].mean())
    half = 4.302652729749464 * d["diff@32"].std(ddof=1) / np.sqrt(3)
    assert grpo["diff@32_hi"] - grpo["diff@32"] == pytest.approx(half)
    assert grpo["diff@1_min"] == d["diff@1"].min() and grpo["diff@1_max"] == d["diff@1"].max()
    assert grpo["diff@32_below"] == int((d["diff@32_hi"] < 0).sum())
    assert grpo["diff@1_above"] == int((d["diff@1_lo"] > 0).sum())
    index = write_compare([tmp_path / "sweep"])
    assert "Across training seeds" in index.read_text()
    lines = (index.parent / "seeds.txt").read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("arith: algorithm=grpo: 3 seeds, diff@1 ")
    assert len(pd.read_csv(index.parent / "arith_seeds.csv")) == 2


def test_report_compare_prints_the_seed_groups(tmp_path, capsys):
    from rlboundary.cli import main

    _seed_sweep(tmp_path / "sweep")
    assert main(["report", "--compare", str(tmp_path / "sweep")]) in (0, None)
    out = capsys.readouterr().out
    assert "across training seeds" in out
    assert "arith: algorithm=grpo: 3 seeds" in out and "arith: algorithm=rloo: 2 seeds" in out
    assert "algorithm=ppo" not in out.split("across training seeds", 1)[1]  # one run: no group
