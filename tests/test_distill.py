"""Distillation (algorithm=distill, trainer/local/distill.py): verl's SFT loss on a hand-computed
case, rejection sampling keeps only verified whole traces, and a short run trains, probes,
keeps its teacher samples and resumes on them."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from rlboundary.trainer.local.batch import sft_loss
from rlboundary.trainer.local.distill import keep_verified


def test_sft_loss_by_hand():
    """Response tokens with probabilities 1/2, 1/4 (row 1) and 1/2 (row 2), padding masked:
    -(ln 1/2 + ln 1/4 + ln 1/2) / 3 = (4/3) ln 2 nats. Split into micro-batches normalised by
    the whole batch's 3 tokens, the parts add up to the same."""
    lp = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.5, 0.7, 0.1]]))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert sft_loss(lp, mask, 3).item() == pytest.approx(4 / 3 * math.log(2), rel=1e-6)
    parts = sft_loss(lp[:1], mask[:1], 3) + sft_loss(lp[1:], mask[1:], 3)
    assert parts.item() == pytest.approx(4 / 3 * math.log(2), rel=1e-6)
    lp = lp.clone().requires_grad_(True)
    sft_loss(lp, mask, 3).backward()          # d/d logp = -mask / 3: padding gets no gradient
    assert torch.allclose(lp.grad, -mask / 3)


def test_rejection_sampling_keeps_only_verified_whole_traces():
    rows = pd.DataFrame([
        # problem, sample, text, correct, finish
        ("a", 0, "t1", True, "stop"),
        ("a", 1, "t1", True, "stop"),      # the same text again: kept once
        ("a", 2, "t2", False, "stop"),     # wrong
        ("a", 3, "t3", True, "length"),    # right answer, trace cut at the limit
        ("a", 4, "t4", True, "stop"),
        ("a", 5, "t5", True, "stop"),      # beyond keep_per_problem=2
        ("b", 0, "u1", False, "stop"),
        ("c", 1, "v2", True, "stop"),
        ("c", 0, "v1", True, "stop"),      # sample order, not row order
    ], columns=["problem_id", "sample", "text", "correct", "finish_reason"])
    kept = keep_verified(rows, 2)
    assert list(zip(kept["problem_id"], kept["text"])) == [("a", "t1"), ("a", "t4"),
                                                           ("c", "v1"), ("c", "v2")]
    assert kept["correct"].all() and (kept["finish_reason"] == "stop").all()


def _distill(tmp_path, teacher: str, base: str, steps: int, **extra) -> list[str]:
    return ["train", "algorithm=distill", f"distill.teacher={teacher}", f"base.path={base}",
            f"run_dir={tmp_path / 'run'}", "distill.problems=48", "distill.samples_per_problem=4",
            "data.train_batch_size=8", f"trainer.total_training_steps={steps}",
            "trainer.save_freq=2", "n=4", "probe.limit=8", "trainer.logger=[console]",
            "ray.num_cpus=2", "progress=false", "trainer.probe=sync",
            *[f"{k}={v}" for k, v in extra.items()]]


def test_a_short_distillation_run_trains_probes_and_resumes(tmp_path, trained_base):
    from rlboundary.cli import main as cli

    run = tmp_path / "run"
    assert cli(_distill(tmp_path, trained_base, trained_base, 2)) == 0
    meta = json.loads((run / "distill_data.parquet.json").read_text())
    assert meta["problems"] == 48 and meta["teacher_samples"] == 4 * 48
    kept = pd.read_parquet(run / "distill_data.parquet")
    assert len(kept) == meta["kept"] > 0 and kept["problem_id"].nunique() <= 48
    train = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    sft = [r for r in train if r.get("kind") == "train"]
    assert [r["step"] for r in sft] == [1, 2] and all(r["actor/sft_loss"] > 0 for r in sft)
    assert (run / "probes" / "arithmetic" / "step_00000002.parquet").exists()
    # resumed with more steps: the same teacher samples, not drawn again
    assert cli(_distill(tmp_path, trained_base, trained_base, 4)) == 0
    assert json.loads((run / "distill_data.parquet.json").read_text()) == meta
    assert (run / "probes" / "arithmetic" / "step_00000004.parquet").exists()


def test_a_teacher_that_solves_nothing_is_one_line(tmp_path, trained_base, random_tiny_model,
                                                    capsys):
    from rlboundary.cli import main as cli

    assert cli(_distill(tmp_path, random_tiny_model, trained_base, 2)) == 2
    err = capsys.readouterr().err
    assert "solved none of the 48 training problems" in err


def test_engine_verl_distillation_passes_verls_sft_validation(tmp_path, trained_base, capsys):
    """dry_run=true composes verl 0.9.1's sft_trainer_engine config and runs what its
    SFTTrainer._build_config runs on it: on a stand-in for a model not here, and on the tiny
    base itself, whose tokenizer then renders the SFT chat template as the local engine encodes
    a sample (BOS + prompt, response + EOS)."""
    from omegaconf import OmegaConf

    from rlboundary.cli import main as cli
    from rlboundary.commands import compose, plain
    from rlboundary.trainer.local.distill import encode_samples
    from rlboundary.trainer.verl.sft import compose_sft, dry_run

    args = ["train", "algorithm=distill", "engine=verl", "dry_run=true", f"run_dir={tmp_path}"]
    assert cli(args + ["base.path=/models/not-here"]) == 0
    out = capsys.readouterr().out
    assert "verl SFT config validated" in out and "stand-in qwen2" in out
    cfg = plain(compose(["algorithm=distill", "engine=verl", f"run_dir={tmp_path}",
                         "verl.trainer.n_gpus_per_node=8"]))
    sft = dry_run(cfg, trained_base)["verl_config"]
    assert sft.model.path == trained_base and sft.trainer.n_gpus_per_node == 8
    assert "hf_model" in list(sft.checkpoint.save_contents)
    assert sft.trainer.default_local_dir == str(tmp_path / "checkpoints")
    assert sft.optim.lr == cfg["actor"]["optim"]["lr"]
    assert OmegaConf.select(sft, "data.train_batch_size") == cfg["data"]["train_batch_size"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(trained_base)
    tok.chat_template = compose_sft(cfg, trained_base).model.custom_chat_template
    kept = pd.DataFrame({"problem": ["3+4*2"], "text": ["<think>3+4=7</think><answer>14</answer>"]})
    prompt, response = encode_samples(tok, "arithmetic", kept)[0]
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "3+4*2?"}, {"role": "assistant", "content": kept["text"][0]}],
        tokenize=True, return_dict=False)
    assert list(rendered) == prompt + response
    with pytest.raises(Exception, match="no_such_key"):
        compose_sft({**cfg, "verl": {"trainer": {"no_such_key": 1}}}, trained_base)


def test_the_distillation_recipe_composes_and_passes_verls_sft_validation(tmp_path, capsys):
    """recipes/tiny/distill.yaml: the teacher writes as long as the probes read, its problems
    are spread over magnitude bands that reach five digits, and the same recipe with
    engine=verl passes verl's SFT validation."""
    import os

    from rlboundary.cli import main as cli
    from rlboundary.cli_args import recipe_overrides
    from rlboundary.commands import compose, plain

    recipe = os.path.join(os.path.dirname(__file__), "..", "recipes", "tiny", "distill.yaml")
    cfg = plain(compose(recipe_overrides(recipe)))
    assert cfg["algorithm"]["name"] == "distill" and cfg["distill"]["enable"]
    assert cfg["distill"]["max_new_tokens"] == cfg["sampling"]["max_new_tokens"]
    assert cfg["data"]["train_bands"][-1][0] == 10_000 and cfg["data"]["min_ops"] >= 5
    assert cfg["distill"]["teacher_base"]["noise"]["p_long"] == 1.0
    assert cli(["train", "--recipe", recipe, "engine=verl", "dry_run=true",
                f"run_dir={tmp_path}", "base.path=/models/not-here"]) == 0
    assert "verl SFT config validated" in capsys.readouterr().out
