"""One training step of the local engine, top to bottom as the phases of the algorithm.

rollout (with dynamic sampling when enabled) -> reward (verifier, shaping) -> baseline rollout
(when the algorithm has one) -> old/ref log-probs -> values -> KL in reward -> advantages ->
critic update -> actor update. What differs between algorithms lives in their config
(``conf/algorithm/*.yaml``) and in registered functions (verl's ``core_algos`` registries and
``rlboundary.algorithms``); nothing here branches on an algorithm's name.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlboundary.algorithms import BASELINES, GROUP_FILTERS, REWARD_SHAPERS
from rlboundary.tasks import Task
from rlboundary.tasks.prompts import render
from rlboundary.tasks.schema import Record
from rlboundary.tasks.verify import compute_score
from rlboundary.trainer.local.batch import collate


class DataOrder:
    """Training prompts in a seeded permutation per epoch; resumable by ``(epoch, pos)``."""

    def __init__(self, records: list[Record], seed: int, epoch: int = 0, pos: int = 0):
        if not records:
            raise ValueError("no training records")
        self.records, self.seed, self.epoch, self.pos = records, int(seed), epoch, pos

    def _perm(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.records))

    def next(self, k: int) -> list[Record]:
        out, perm = [], self._perm()
        while len(out) < k:
            if self.pos >= len(perm):
                self.epoch, self.pos = self.epoch + 1, 0
                perm = self._perm()
            out.append(self.records[perm[self.pos]])
            self.pos += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}


@dataclass
class StepContext:
    """What every step needs: the plain config, the worker handle and the driver's state."""

    cfg: Mapping[str, Any]
    call: Any                 # call(method_name, *args) -> result, on the policy worker
    task: Task
    data: DataOrder
    pad_id: int
    kl_ctrl: Any = None       # verl KL controller when algorithm.use_kl_in_reward
    timing: dict = field(default_factory=dict)
    step_fn: Any = None       # what one step runs: train_step (RL) or distill.sft_step


@contextlib.contextmanager
def _timer(name: str, timing: dict) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    timing[f"timing_s/{name}"] = timing.get(f"timing_s/{name}", 0.0) + time.perf_counter() - t0


def _score(task: Task, records: list[Record], texts: list[str], n: int) -> tuple[list, list]:
    """verl's custom reward function on every sample -> (scores, acc), prompt-major."""
    out = [compute_score(task.name, t, records[i // n].answer) for i, t in enumerate(texts)]
    return [float(o["score"]) for o in out], [float(o["acc"]) for o in out]


def _generate(ctx: StepContext, records: list[Record], n: int, seed: int, temperature: float):
    r = ctx.cfg["rollout"]
    prompts = [render(ctx.task.template, rec.problem) for rec in records]
    return ctx.call("generate", prompts, n, seed=seed, temperature=temperature,
                    top_p=float(r["top_p"]), max_new_tokens=int(r["response_length"]))


# What a rollout keeps of each sample, as the policy worker's ``generate`` returns it.
ROLLOUT_KEYS = ("prompt_ids", "response_ids", "texts", "finish_reasons", "rollout_log_probs")


def padded(rows: list, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample float arrays -> ``(B, T)`` float32 right-padded with 0 (as ``mask``)."""
    out = torch.zeros_like(mask, dtype=torch.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.as_tensor(np.asarray(r, dtype=np.float32))
    return out * mask


def rollout(ctx: StepContext, step: int) -> tuple[dict, dict[str, float]]:
    """Sample ``rollout.n`` responses for ``data.train_batch_size`` prompts and score them.

    With ``algorithm.filter_groups.enable`` (DAPO's dynamic sampling) groups the registered
    filter rejects are dropped and more prompts are drawn, up to ``max_num_gen_batches`` rounds
    (0 = no cap); a batch still short after the cap is trained on as it is. Returns the kept
    samples (lists, prompt-major, with ``uid`` per sample) and rollout metrics.
    """
    cfg, n = ctx.cfg, int(ctx.cfg["rollout"]["n"])
    want = int(cfg["data"]["train_batch_size"])
    fg = cfg["algorithm"]["filter_groups"]
    kept: dict[str, list] = {k: [] for k in (*ROLLOUT_KEYS, "score", "acc", "uid", "records")}
    rounds, seen, groups = 0, 0, 0
    while groups < want:
        rounds += 1
        records = ctx.data.next(want)
        gen = _generate(ctx, records, n, seed=int(cfg["seed"]) * 1_000_003 + step * 1009 + rounds,
                        temperature=float(cfg["rollout"]["temperature"]))
        score, acc = _score(ctx.task, records, gen["texts"], n)
        uid = np.repeat(np.arange(seen, seen + len(records)), n)
        seen += len(records)
        keep = np.ones(len(uid), bool)
        if fg["enable"]:
            metric = np.asarray(acc if fg["metric"] == "acc" else score)
            keep = GROUP_FILTERS.get(fg["filter"])(metric, uid)
        for i in np.flatnonzero(keep):
            if groups >= want and i % n == 0:
                break
            for k in ROLLOUT_KEYS:
                kept[k].append(gen[k][i])
            for k, v in (("score", score[i]), ("acc", acc[i]), ("uid", uid[i]),
                         ("records", records[i // n])):
                kept[k].append(v)
            groups += int(i % n == 0)
        cap = int(fg["max_num_gen_batches"])
        if not fg["enable"] or (cap and rounds >= cap):
            break
    if not kept["uid"]:  # every group filtered out up to the cap: the last round as it is
        kept = {**{k: gen[k] for k in ROLLOUT_KEYS}, "score": score, "acc": acc,
                "uid": list(uid), "records": [r for r in records for _ in range(n)]}
    metrics = {"train/gen_rounds": rounds, "train/kept_groups": groups,
               "train/prompts_sampled": seen}
    return kept, metrics


def shaped(cfg: Mapping[str, Any], scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``scores (B,)`` after the configured reward shaping (DAPO's overlong punishment) for
    responses of ``lengths (B,)`` tokens: what verl's reward manager does to every scored
    response, the samples' and the greedy baseline's alike."""
    ob = cfg["reward"]["overlong_buffer"]
    if not ob["enable"]:
        return scores
    return REWARD_SHAPERS.get("overlong")(
        scores, lengths, max_resp_len=int(cfg["rollout"]["response_length"]),
        buffer_len=int(ob["len"]), penalty_factor=float(ob["penalty_factor"]))


def reward_tensors(ctx: StepContext, kept: dict, batch: dict) -> torch.Tensor:
    """``token_level_scores (B, T)``: the (shaped) outcome score on each response's last token."""
    mask = batch["response_mask"]
    lengths = mask.sum(-1)
    scores = shaped(ctx.cfg, torch.tensor(kept["score"], dtype=torch.float32), lengths)
    tls = torch.zeros_like(mask)
    last = (lengths.long() - 1).clamp(min=0)
    tls[torch.arange(len(scores)), last] = scores * (lengths > 0)
    return tls


def baseline_rewards(ctx: StepContext, kept: dict, step: int) -> torch.Tensor:
    """``reward_baselines (B,)`` from the registered baseline's own rollout (ReMax: greedy)."""
    fn = BASELINES.get(ctx.cfg["algorithm"]["baseline"])
    uids = np.asarray(kept["uid"])
    firsts = [int(np.flatnonzero(uids == u)[0]) for u in dict.fromkeys(uids.tolist())]
    records = [kept["records"][i] for i in firsts]
    spec = fn.rollout
    gen = _generate(ctx, records, int(spec["n"]), seed=step, temperature=float(spec["temperature"]))
    score, _ = _score(ctx.task, records, gen["texts"], int(spec["n"]))
    lengths = torch.tensor([len(r) for r in gen["response_ids"]], dtype=torch.float32)
    score = shaped(ctx.cfg, torch.tensor(score, dtype=torch.float32), lengths)
    per_prompt = score.view(len(records), -1).mean(-1)
    position = {u: j for j, u in enumerate(dict.fromkeys(uids.tolist()))}
    return fn(per_prompt, np.array([position[u] for u in uids.tolist()]))


def algo_config(alg: Mapping[str, Any]):
    """verl's ``AlgoConfig`` for the estimators that read it (REINFORCE++'s gamma, ...)."""
    from verl.trainer.config import AlgoConfig

    return AlgoConfig(gamma=float(alg["gamma"]), lam=float(alg["lam"]),
                      adv_estimator=alg["adv_estimator"],
                      norm_adv_by_std_in_grpo=bool(alg["norm_adv_by_std_in_grpo"]),
                      use_kl_in_reward=bool(alg["use_kl_in_reward"]),
                      kl_penalty=alg["kl_penalty"])


def compute_advantages(alg: Mapping[str, Any], batch: dict, index: np.ndarray
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages (B, T), returns (B, T))`` from verl's registered estimator
    ``algorithm.adv_estimator``, called with the keyword arguments its signature names
    (like verl's ``ray_trainer.compute_advantage``, minus its if/elif on names)."""
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    fn = get_adv_estimator_fn(alg["adv_estimator"])
    available = {"token_level_rewards": batch["token_level_rewards"],
                 "response_mask": batch["response_mask"], "index": index,
                 "values": batch.get("values"), "reward_baselines": batch.get("reward_baselines"),
                 "gamma": float(alg["gamma"]), "lam": float(alg["lam"]),
                 "norm_adv_by_std_in_grpo": bool(alg["norm_adv_by_std_in_grpo"]),
                 "config": algo_config(alg)}
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in available.items() if k in params and v is not None}
    return fn(**kwargs)


def kl_in_reward(ctx: StepContext, batch: dict) -> dict[str, float]:
    """verl's in-reward KL: ``token_level_rewards = scores - beta * kl(old, ref) * mask``."""
    from verl.trainer.ppo.core_algos import kl_penalty

    mask = batch["response_mask"]
    kld = kl_penalty(batch["old_log_probs"], batch["ref_log_prob"],
                     ctx.cfg["algorithm"]["kl_penalty"]) * mask
    beta = ctx.kl_ctrl.value
    batch["token_level_rewards"] = batch["token_level_scores"] - beta * kld
    current = float(((kld.sum(-1) / mask.sum(-1).clamp(min=1))).mean())
    ctx.kl_ctrl.update(current_kl=current, n_steps=len(mask))
    return {"actor/reward_kl_penalty": current, "actor/reward_kl_penalty_coeff": beta}


def train_step(ctx: StepContext, step: int) -> dict[str, float]:
    """Run one step; returns its metrics in verl's namespaces."""
    cfg, alg, timing = ctx.cfg, ctx.cfg["algorithm"], {}
    t0 = time.perf_counter()
    with _timer("gen", timing):
        kept, metrics = rollout(ctx, step)
    batch = collate(kept["prompt_ids"], kept["response_ids"], ctx.pad_id)
    index = np.asarray(kept["uid"])
    with _timer("reward", timing):
        batch["token_level_scores"] = reward_tensors(ctx, kept, batch)
    if alg["baseline"]:
        with _timer("gen_baseline", timing):
            batch["reward_baselines"] = baseline_rewards(ctx, kept, step)
    bypass = bool(alg["rollout_correction"]["bypass_mode"])
    if bypass:  # verl's bypass mode: the rollout's own log-probs are the old ones
        batch["old_log_probs"] = padded(kept["rollout_log_probs"], batch["response_mask"])
    with _timer("old_log_prob", timing):
        if not bypass or cfg["use_ref"]:
            batch.update(ctx.call("compute_log_probs", batch,
                                  float(cfg["rollout"]["temperature"]), policy=not bypass))
    if cfg["use_critic"]:
        with _timer("values", timing):
            batch["values"] = ctx.call("compute_values", batch)
    batch["token_level_rewards"] = batch["token_level_scores"]
    if alg["use_kl_in_reward"]:
        metrics.update(kl_in_reward(ctx, batch))
    with _timer("adv", timing):
        batch["advantages"], batch["returns"] = compute_advantages(alg, batch, index)
    if cfg["use_critic"]:
        with _timer("update_critic", timing):
            metrics.update(ctx.call("update_critic", batch, step))
    if updates_actor(step, int(cfg["trainer"]["critic_warmup"])):
        with _timer("update_actor", timing):
            metrics.update(ctx.call("update_actor", batch, step))
    metrics.update(batch_metrics(batch, kept))
    timing["timing_s/step"] = time.perf_counter() - t0
    return {**metrics, **timing}


def updates_actor(step: int, critic_warmup: int) -> bool:
    """Whether ``global_step`` ``step`` (from 1) updates the actor: verl's trainers skip it
    while ``trainer.critic_warmup > global_steps``."""
    return not critic_warmup > step


def batch_metrics(batch: dict, kept: dict) -> dict[str, float]:
    """Reward, accuracy, response length and KL-to-reference of the trained batch."""
    mask = batch["response_mask"]
    lengths = mask.sum(-1)
    out = {"train/reward": float(batch["token_level_scores"].sum(-1).mean()),
           "train/acc": float(np.mean(kept["acc"])),
           "train/score": float(np.mean(kept["score"])),
           "response_length/mean": float(lengths.mean()),
           "response_length/max": float(lengths.max()),
           "response_length/clip_ratio": float(np.mean([r == "length"
                                                        for r in kept["finish_reasons"]])),
           "critic/advantages/mean": float((batch["advantages"] * mask).sum() / mask.sum()),
           "critic/advantages/max": float(batch["advantages"].max())}
    if "ref_log_prob" in batch:
        kl = (batch["old_log_probs"] - batch["ref_log_prob"]) * mask
        out["actor/kl"] = float(kl.sum() / mask.sum().clamp(min=1))
    return out
