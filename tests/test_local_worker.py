"""The local engine's policy worker on a fixed batch: its loss is verl's, micro-batching does
not change it, and a NaN stops the step before the optimizer touches the weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlboundary.tasks import TASKS
from rlboundary.trainer.local.batch import collate, response_logprobs
from rlboundary.trainer.local.step import DataOrder, StepContext, padded, rollout
from rlboundary.trainer.local.worker import NonFiniteError, PolicyWorker, verl_actor_config


def _cfg(**actor_kw) -> dict:
    actor = {"optim": {"lr": 0.0, "betas": [0.9, 0.999], "weight_decay": 0.0,
                       "lr_warmup_steps": 0},
             "grad_clip": 1.0, "ppo_mini_batch_size": 2, "ppo_micro_batch_size_per_gpu": 64,
             "ppo_epochs": 1, "shuffle": False, "clip_ratio": 0.2, "clip_ratio_low": 0.2,
             "clip_ratio_high": 0.28, "clip_ratio_c": 3.0, "loss_agg_mode": "token-mean",
             "entropy_coeff": 0.0, "use_kl_loss": False, "kl_loss_coef": 0.001,
             "kl_loss_type": "low_var_kl", "policy_loss": {"loss_mode": "vanilla"}}
    actor.update(actor_kw)
    return {"seed": 0, "actor": actor, "critic": {}, "use_ref": True, "use_critic": False,
            "rollout": {"n": 3, "temperature": 1.0, "top_p": 1.0, "response_length": 12},
            "sampler": {"name": "hf", "device": "cpu", "dtype": "float32",
                        "fast_path": "auto", "prune_below": 0.5, "batch_size": 1024}}


@pytest.fixture()
def fixed(random_tiny_model):
    """A worker and one rollout batch of 2 prompts x 3 samples with fixed advantages."""
    worker = PolicyWorker(random_tiny_model, _cfg(), threads=1)
    gen = worker.generate(["1+2?", "3*4-5?"], 3, seed=0, temperature=1.0, top_p=1.0,
                          max_new_tokens=12)
    batch = collate(gen["prompt_ids"], gen["response_ids"], worker.pad_id)
    batch.update(worker.compute_log_probs(batch, 1.0))
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, 0.0])[:, None] * batch["response_mask"]
    batch["advantages"] = adv
    return worker, batch


def test_old_log_probs_equal_a_plain_forward(fixed):
    worker, batch = fixed
    with torch.no_grad():  # one padded forward over the whole batch, no length sorting
        logp = response_logprobs(worker.policy, batch, 1.0)[0] * batch["response_mask"]
    torch.testing.assert_close(batch["old_log_probs"], logp)
    # the reference model starts as the same weights; padding holds zeros
    torch.testing.assert_close(batch["ref_log_prob"], logp)
    assert (batch["old_log_probs"][batch["response_mask"] == 0] == 0).all()


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_bypass_mode_rollout_log_probs_are_the_old_log_probs(random_tiny_model, temperature):
    """verl's bypass mode swaps the old log-prob pass for the sampler's own numbers: at top_p 1
    they are the teacher-forced log-probs and entropies of log_softmax(logits / T)."""
    worker = PolicyWorker(random_tiny_model, _cfg(), threads=1)
    gen = worker.generate(["1+2?", "3*4-5?"], 3, seed=1, temperature=temperature, top_p=1.0,
                          max_new_tokens=12)
    batch = collate(gen["prompt_ids"], gen["response_ids"], worker.pad_id)
    full = worker.compute_log_probs(batch, temperature)
    mask = batch["response_mask"]
    torch.testing.assert_close(padded(gen["rollout_log_probs"], mask), full["old_log_probs"],
                               atol=2e-5, rtol=0)
    torch.testing.assert_close(padded(gen["rollout_entropy"], mask), full["entropy"],
                               atol=2e-5, rtol=0)
    ref_only = worker.compute_log_probs(batch, temperature, policy=False)
    assert set(ref_only) == {"ref_log_prob"}
    torch.testing.assert_close(ref_only["ref_log_prob"], full["ref_log_prob"])


def test_policy_loss_equals_verl_called_directly(fixed):
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla

    worker, batch = fixed
    metrics = worker.update_actor(batch, step=1)  # lr 0: weights unchanged
    mask = batch["response_mask"]
    with torch.no_grad():
        logp, _ = response_logprobs(worker.policy, batch, 1.0)
    config = verl_actor_config(_cfg()["actor"], 3)
    config.global_batch_info.update({"dp_size": 1, "batch_num_tokens": mask.sum(),
                                     "global_batch_size": 6})
    loss, m = compute_policy_loss_vanilla(batch["old_log_probs"], logp, batch["advantages"],
                                          mask, "token-mean", config)
    assert metrics["actor/pg_loss"] == pytest.approx(float(loss), abs=1e-6)
    # ratio is exactly 1 on the first pass, so the loss is -(token-mean advantage)
    by_hand = -float((batch["advantages"] * mask).sum() / mask.sum())
    assert metrics["actor/pg_loss"] == pytest.approx(by_hand, abs=1e-6)
    assert metrics["actor/pg_clipfrac"] == m["actor/pg_clipfrac"] == 0.0


def test_micro_batches_give_the_same_gradient(random_tiny_model, fixed):
    _, batch = fixed
    grads = []
    for micro in (64, 2):  # one mini-batch of 6 rows: one micro-batch, or three of 2 rows
        w = PolicyWorker(random_tiny_model, _cfg(ppo_micro_batch_size_per_gpu=micro),
                         threads=1)
        w.update_actor(copy.deepcopy(batch), step=1)  # lr 0: .grad holds the step's gradient
        grads.append(torch.cat([p.grad.flatten() for p in w.policy.parameters()]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], atol=1e-7, rtol=1e-5)


def test_nan_loss_stops_before_the_optimizer(fixed):
    worker, batch = fixed
    worker.optim.param_groups[0]["lr"] = 1e-2
    before = [p.detach().clone() for p in worker.policy.parameters()]
    batch["advantages"][2, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"step 7: actor/pg_loss is nan"):
        worker.update_actor(batch, step=7)
    for a, b in zip(before, worker.policy.parameters()):
        assert torch.equal(a, b)


def test_dynamic_sampling_fills_the_batch_with_informative_groups(random_tiny_model):
    """DAPO's rollout through the real worker: kept groups always have reward spread, and the
    rounds stop at the cap when the batch cannot be filled."""
    worker = PolicyWorker(random_tiny_model, _cfg(), threads=1)
    task = TASKS.get("arithmetic")
    records = [r for r in task.load(seed=0, n_train=60, min_ops=1, max_ops=6, test_ops=[4, 6],
                                    bands=[[0, 99]], test_per_band=[2])
               if r.split == "train"][:40]
    cfg = {"seed": 0, "rollout": {"n": 4, "temperature": 1.0, "top_p": 1.0,
                                  "response_length": 8},
           "data": {"train_batch_size": 4},
           "algorithm": {"filter_groups": {"enable": True, "filter": "nonconstant",
                                           "metric": "acc", "max_num_gen_batches": 3}}}
    ctx = StepContext(cfg=cfg, call=lambda m, *a, **k: getattr(worker, m)(*a, **k), task=task,
                      data=DataOrder(records, 0), pad_id=worker.pad_id)
    # a random model never answers: every group is all-wrong, so the cap decides
    kept, metrics = rollout(ctx, step=1)
    assert metrics["train/gen_rounds"] == 3 and metrics["train/kept_groups"] == 0
    assert metrics["train/prompts_sampled"] == 12
    assert len(kept["uid"]) == 16  # the last round, unfiltered
    # make every answer right for one prompt's group by scoring against what was sampled
    acc = np.array(kept["acc"])
    assert (acc == 0).all()
