"""``report --compare``: several runs against their base model(s), on synthetic runs
(tests/helpers/synthetic_runs.py): the table, the seed groups, W&B, the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import (
    DATASETS,
    N_PROBLEMS,
    make_run,
    seed_sweep,
    twin_runs,
    wandb_records,
    wandb_typed,
)

from rlboundary.report import load_run
from rlboundary.report.load import summary


def test_compare_table_against_the_shared_base(tmp_path):
    from rlboundary.report.compare import compare_table, write_compare

    a, b = twin_runs(tmp_path)
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

    a, b = twin_runs(tmp_path)
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

    twin_runs(tmp_path)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    local = Path(log_compare_wandb([tmp_path / "sweep"], project="rlboundary-test"))
    records = [r for p in local.glob("*.wandb") for r in wandb_records(p)]
    runs = wandb_typed(local, "run")
    assert runs and runs[0].run_group == "sweep" and runs[0].job_type == "compare"
    assert any(b"compare/arith" in r for r in records)


def test_compare_groups_runs_that_differ_only_in_seed(tmp_path):
    from rlboundary.report.compare import compare_table, find_runs, write_compare
    from rlboundary.report.seeds import seed_groups, seed_table

    seed_sweep(tmp_path / "sweep")
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

    seed_sweep(tmp_path / "sweep")
    assert main(["report", "--compare", str(tmp_path / "sweep")]) in (0, None)
    out = capsys.readouterr().out
    assert "across training seeds" in out
    assert "arith: algorithm=grpo: 3 seeds" in out and "arith: algorithm=rloo: 2 seeds" in out
    assert "algorithm=ppo" not in out.split("across training seeds", 1)[1]  # one run: no group


def test_boundary_verdict_names_where_the_paired_band_clears_zero():
    from rlboundary.report.study import boundary_verdict

    ks = [1, 2, 4, 8]
    assert boundary_verdict(ks, [0.01, 0.02, 0.01, 0.005], [0.1] * 4) == "above at every k <= 8"
    assert boundary_verdict(ks, [-0.2] * 4, [-0.01, -0.02, -0.1, -0.001]) == \
        "below at every k <= 8"
    assert boundary_verdict(ks, [0.02, 0.01, -0.03, -0.08], [0.06, 0.05, 0.01, -0.01]) == \
        "above for k 1-2, below for k 8"
    assert boundary_verdict(ks, [0.0] * 4, [0.0] * 4) == "within the band at every k"
    assert boundary_verdict(ks, [-0.1, 0.01, -0.1, -0.1], [0.1, 0.1, 0.1, 0.1]) == \
        "above for k 2"


def test_a_run_above_the_base_at_every_k_is_named_so(tmp_path):
    """The study's Figure 7 in the table: a run that adds 3 correct samples to every problem
    (so every problem the base never solved is solved) lies above the base at every k; a copy
    of the base lies within the band; the table's bounds are the extremes over the k grid."""
    from rlboundary import probes
    from rlboundary.report.compare import compare_table
    from rlboundary.report.load import k_grid

    a, _ = twin_runs(tmp_path)
    base = pd.read_parquet(a / "probes" / "arith" / "step_00000000.parquet")
    for name, extra in (("distilled", 3), ("same", 0)):
        run = tmp_path / name / "probes" / "arith"
        run.mkdir(parents=True)
        base.to_parquet(run / "step_00000000.parquet")
        base.assign(c=np.minimum(base["n"], base["c"] + extra), step=20).to_parquet(
            run / "step_00000020.parquet")
    datas = {name: load_run(tmp_path / name) for name in ("distilled", "same")}
    df = compare_table(datas, "arith").set_index("run")
    assert df.loc["distilled", "vs_base"] == "above at every k <= 32"
    assert df.loc["same", "vs_base"] == "within the band at every k"
    assert df.loc["base model", "vs_base"] == "" and np.isnan(df.loc["base model",
                                                                      "diff_lo_min"])
    n, c = base["n"].to_numpy(), base["c"].to_numpy()
    _, lo, hi = probes.paired_diff_ci(n, np.minimum(n, c + 3), n, c, k_grid(32))
    assert df.loc["distilled", "diff_lo_min"] == pytest.approx(lo.min())
    assert df.loc["distilled", "diff_hi_max"] == pytest.approx(hi.max())


def test_the_compare_figure_continues_each_curve_with_its_prediction(tmp_path):
    """Base and runs keep their measured curves; each prediction beyond n is one more thin
    dashed line from its last measured point, in its curve's colour."""
    from rlboundary.report.compare_plots import compare_curves_figure

    k = [1, 2, 4]
    cur = pd.DataFrame({"k": k, "pass": [0.2, 0.3, 0.4], "lo": [0.1] * 3, "hi": [0.5] * 3})
    pred = pd.DataFrame({"k": [8, 16], "pass": [0.45, 0.5], "lo": [0.4] * 2, "hi": [0.6] * 2})
    groups = {"base model": ["rl", "distilled"]}
    plain = compare_curves_figure({"base model": cur}, {"rl": cur, "distilled": cur}, "arith",
                                  groups)
    fig = compare_curves_figure({"base model": cur}, {"rl": cur, "distilled": cur}, "arith",
                                groups, {"base model": pred, "distilled": pred})
    before, after = plain.axes[0].get_lines(), fig.axes[0].get_lines()
    dashed = [ln for ln in after[len(before):] if list(ln.get_xdata()) == [4, 8, 16]]
    assert len(dashed) == 2 and [ln.get_ydata()[0] for ln in dashed] == [0.4, 0.4]
    assert dashed[0].get_color() == before[0].get_color()   # the base's prediction: black
    assert dashed[1].get_color() == before[2].get_color()   # the distilled run's
    assert "predicted" in fig.axes[0].get_title()
