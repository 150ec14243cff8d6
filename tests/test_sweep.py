"""Sweeps through Hydra's multirun: one run directory per job, a failed job recorded while the
others finish, a re-run that redoes only what is missing, and the combined report."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from rlboundary.cli import main

pytestmark = pytest.mark.slow

QUICK = ["data.train_batch_size=4", "rollout.n=4", "rollout.response_length=48",
         "actor.ppo_mini_batch_size=2", "trainer.logger=[console]", "progress=false",
         "ray.num_cpus=2", "trainer.threads=1", "probe.threads=1", "actor.optim.lr=1e-3",
         "actor.optim.lr_warmup_steps=0", "trainer.total_training_steps=2",
         "trainer.save_freq=2", "n=8", "probe.limit=8", "sampling.max_new_tokens=48"]


def jobs(sweep_dir) -> dict[str, dict]:
    record = json.loads((sweep_dir / "sweep.json").read_text())
    return {j["name"]: j for j in record["jobs"]}


def test_two_job_sweep_then_compare(trained_base, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    assert main(["train", "-m", f"base.path={trained_base}", f"hydra.sweep.dir={sweep}",
                 "algorithm=grpo,rloo", *QUICK]) == 0
    # Job directories are named by what the sweep varies only.
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["algorithm=grpo",
                                                                    "algorithm=rloo"]
    done = jobs(sweep)
    assert {n: j["status"] for n, j in done.items()} == {"algorithm=grpo": "done",
                                                         "algorithm=rloo": "done"}
    for name in done:
        run = sweep / name
        assert (run / "checkpoints" / "global_step_2" / "model.safetensors").exists()
        assert (run / ".hydra" / "overrides.yaml").exists()  # Hydra's own record of the job
        assert name in (run / ".hydra" / "overrides.yaml").read_text()
        assert json.loads((run / "job.json").read_text())["run_dir"] == str(run)
    capsys.readouterr()
    assert main(["report", "--compare", str(sweep)]) == 0
    table = pd.read_csv(sweep / "compare" / "arithmetic_compare.csv")
    assert list(table["run"]) == ["base model", "algorithm=grpo", "algorithm=rloo"]
    assert list(table["step"]) == [0, 2, 2]
    for _, r in table.iloc[1:].iterrows():  # delta_se = base pass@k_max - run pass@1
        assert r["delta_se"] == pytest.approx(table["pass@8"].iloc[0] - r["pass@1"])
        assert r["both"] + r["base_only"] + r["policy_only"] + r["neither"] == 8
    html = (sweep / "compare" / "index.html").read_text()
    assert "algorithm=grpo" in html and "algorithm=rloo" in html and html.count("<img") == 3


def test_failed_job_recorded_others_finish_and_rerun_redoes_only_it(trained_base, tmp_path):
    sweep = tmp_path / "sweep"
    # lr 1e30 with an entropy bonus (a gradient from step 1 on) blows the weights up: step 2
    # fails. The same sweep twice: the job done is skipped, the failed one runs again.
    cmd = ["train", "-m", f"base.path={trained_base}", f"hydra.sweep.dir={sweep}",
           "trainer.probe=off", *QUICK, "actor.entropy_coeff=0.01", "actor.optim.lr=1e-3,1e30"]
    assert main(cmd) == 1
    first = jobs(sweep)
    assert sorted(first) == ["actor.optim.lr=0.001", "actor.optim.lr=1e+30"]
    ok, bad = first["actor.optim.lr=0.001"], first["actor.optim.lr=1e+30"]
    assert ok["status"] == "done" and bad["status"] == "failed" and bad["error"]
    assert "Traceback" in (sweep / "actor.optim.lr=1e+30" / "error.txt").read_text()
    assert (sweep / "actor.optim.lr=0.001" / "checkpoints" / "global_step_2").is_dir()
    assert main(cmd) == 1
    again = jobs(sweep)
    assert again["actor.optim.lr=0.001"]["status"] == "skipped"
    assert again["actor.optim.lr=0.001"]["attempts"] == 1
    assert again["actor.optim.lr=1e+30"]["status"] == "failed"
    assert again["actor.optim.lr=1e+30"]["attempts"] == 2


def test_a_sweep_recipe_without_m_is_refused(tmp_path, capsys):
    root = os.path.join(os.path.dirname(__file__), "..", "recipes", "tiny", "six_algorithms.yaml")
    assert main(["train", "--recipe", root]) == 2
    assert "-m" in capsys.readouterr().err


def test_a_probe_sweep_over_temperature_lands_on_one_compare_page(trained_base, tmp_path,
                                                                  monkeypatch, capsys):
    """`rlboundary probe -m sampling.temperature=0.6,1.0 model=CKPT`: one probe run per
    temperature under runs/sweeps/<data>_probe, each checkpoint probe against the base sampled
    at the same temperature; `report --compare` puts both on one page, each run paired with
    its own base."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlboundary.results.store import ProbeStore

    ckpt = tmp_path / "global_step_5"
    model = AutoModelForCausalLM.from_pretrained(trained_base)
    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)   # a sharper policy than the base
    model.save_pretrained(ckpt)
    AutoTokenizer.from_pretrained(trained_base).save_pretrained(ckpt)
    monkeypatch.chdir(tmp_path)
    cmd = ["probe", "-m", "sampling.temperature=0.6,1.0", f"model={ckpt}",
           f"base.path={trained_base}", "n=8", "probe.limit=8", "progress=false",
           "sampling.max_new_tokens=48"]
    assert main(cmd) == 0
    sweep = tmp_path / "runs" / "sweeps" / "arithmetic_probe"
    done = jobs(sweep)
    assert {n: j["status"] for n, j in done.items()} == {"sampling.temperature=0.6": "done",
                                                         "sampling.temperature=1.0": "done"}
    for t in (0.6, 1.0):
        run = sweep / f"sampling.temperature={t}"
        for step in (0, 5):
            prov = ProbeStore(str(run), "arithmetic", step).provenance()
            assert prov["sampling"]["temperature"] == t
        assert (run / "report" / "index.html").exists()
    out = capsys.readouterr().out
    assert "rlboundary report --compare runs/sweeps/arithmetic_probe" in out
    assert main(cmd) == 0   # probe jobs run again and reuse every stored result
    assert {j["attempts"] for j in jobs(sweep).values()} == {2}
    assert main(["report", "--compare", str(sweep)]) == 0
    table = pd.read_csv(sweep / "compare" / "arithmetic_compare.csv")
    assert list(table["run"]) == ["base model (sampling.temperature=0.6)",
                                  "sampling.temperature=0.6",
                                  "base model (sampling.temperature=1.0)",
                                  "sampling.temperature=1.0"]
    assert list(table["step"]) == [0, 5, 0, 5]
    for base_row, run_row in ((0, 1), (2, 3)):   # each run against its own base
        b, r = table.iloc[base_row], table.iloc[run_row]
        assert r["diff@1"] == pytest.approx(r["pass@1"] - b["pass@1"])
        assert r["delta_se"] == pytest.approx(b["pass@8"] - r["pass@1"])
    html = (sweep / "compare" / "index.html").read_text()
    assert html.count("<img") == 3 and "sampled like it" in html
