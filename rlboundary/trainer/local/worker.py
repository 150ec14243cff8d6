"""The policy worker of the local engine: rollout, log-probs, values and the updates.

Like verl's hybrid ``ActorRolloutRefWorker`` (plus a colocated critic), one process holds the
policy weights and both samples from them and updates them, so every rollout uses the weights
of the last update. The driver (:mod:`rlboundary.trainer.local.engine`) runs this class as a
Ray actor and owns everything else: data order, rewards, advantages, checkpoints, logging.

All RL math comes from verl's registries in ``verl.trainer.ppo.core_algos``: the policy loss
from ``get_policy_loss_fn(actor.policy_loss.loss_mode)`` with verl's own ``ActorConfig``,
``agg_loss`` for entropy and KL terms, ``kl_penalty`` for the KL loss, ``compute_value_loss``
for the critic. Loss aggregation uses verl's ``global_batch_info`` convention: every
micro-batch loss is normalised by its whole mini-batch, so the sum of micro-batch gradients
equals one pass over the mini-batch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from rlboundary.trainer.local.batch import (
    micro_batches,
    minibatches,
    response_logprobs,
    response_values,
    select,
)
from rlboundary.trainer.local.checkpoint import read_tensors


class NonFiniteError(FloatingPointError):
    """A loss or gradient norm is NaN or infinite; raised before the optimizer steps."""


def _check_finite(value: torch.Tensor, step: int, name: str) -> None:
    if not torch.isfinite(value).all():
        raise NonFiniteError(f"step {step}: {name} is {float(value)}; stopped before the "
                             "optimizer step (the weights are those of the previous step)")


def _adamw(params, optim: Mapping[str, Any]):
    """AdamW with verl's ``constant`` schedule: verl's own ``get_constant_schedule_with_warmup``
    (zero-indexed: the first update runs at lr 0, update ``s`` at ``s / W`` of the base lr)."""
    from verl.utils.torch_functional import get_constant_schedule_with_warmup

    opt = torch.optim.AdamW(params, lr=float(optim["lr"]), betas=tuple(optim["betas"]),
                            weight_decay=float(optim["weight_decay"]))
    return opt, get_constant_schedule_with_warmup(opt, int(optim["lr_warmup_steps"]))


#: What verl's FSDP engine sets on a critic's HF config before loading it
#: (``workers/engine/fsdp/transformer_impl.py``): one value, no dropout anywhere.
CRITIC_CONFIG = {"num_labels": 1, "classifier_dropout": 0.0, "hidden_dropout": "0",
                 "summary_dropout_prob": 0.0}


def load_critic(model_path: str):
    """The value model: the base architecture with a one-label token-classification head, its
    config set as verl's engine sets it (:data:`CRITIC_CONFIG`), so train-mode forward passes
    are deterministic like verl's. (verl's ``load_valuehead_model`` asks for flash-attention,
    which CPUs lack.)"""
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(model_path)
    for key, value in CRITIC_CONFIG.items():
        setattr(config, key, value)
    return AutoModelForTokenClassification.from_pretrained(model_path, config=config,
                                                           dtype=torch.float32)


def verl_actor_config(actor: Mapping[str, Any], rollout_n: int):
    """Our ``actor`` settings as verl's ``ActorConfig`` (what verl's policy losses read)."""
    from verl.workers.config.actor import ActorConfig, PolicyLossConfig

    return ActorConfig(
        strategy="fsdp", rollout_n=int(rollout_n),
        ppo_mini_batch_size=int(actor["ppo_mini_batch_size"]),
        ppo_micro_batch_size_per_gpu=int(actor["ppo_micro_batch_size_per_gpu"]),
        ppo_epochs=int(actor["ppo_epochs"]), clip_ratio=float(actor["clip_ratio"]),
        clip_ratio_low=float(actor["clip_ratio_low"]),
        clip_ratio_high=float(actor["clip_ratio_high"]),
        clip_ratio_c=float(actor["clip_ratio_c"]), loss_agg_mode=actor["loss_agg_mode"],
        entropy_coeff=float(actor["entropy_coeff"]), use_kl_loss=bool(actor["use_kl_loss"]),
        kl_loss_coef=float(actor["kl_loss_coef"]), kl_loss_type=actor["kl_loss_type"],
        policy_loss=PolicyLossConfig(loss_mode=actor["policy_loss"]["loss_mode"]))


class PolicyWorker:
    """Policy (+ frozen reference, + critic when the algorithm needs one) on one device.

    ``cfg`` is the plain training config (``conf/config.yaml`` ``actor``, ``critic``,
    ``rollout``, ``sampler``, ``seed``) plus ``use_ref`` and ``use_critic``, decided by the
    driver with verl's ``need_reference_policy`` / ``need_critic`` rules.
    """

    def __init__(self, model_path: str, cfg: Mapping[str, Any], threads: int | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from verl.trainer.ppo.core_algos import get_policy_loss_fn

        from rlboundary.console import quiet
        from rlboundary.samplers.hf import HFSampler

        quiet(bool(cfg.get("verbose")))
        if threads:
            torch.set_num_threads(int(threads))
        torch.manual_seed(int(cfg["seed"]))
        self.cfg, self.actor = cfg, cfg["actor"]
        sampler_kw = {k: v for k, v in cfg["sampler"].items() if k not in ("name", "torch_threads")}
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.policy = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        self.sampler = HFSampler(model=self.policy, tokenizer=self.tokenizer, **sampler_kw)
        self.device = self.sampler.device
        self.ref = None
        if cfg["use_ref"]:
            self.ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
            self.ref.to(self.device).eval().requires_grad_(False)
        self.optim, self.sched = _adamw(self.policy.parameters(), self.actor["optim"])
        self.critic = self.critic_optim = self.critic_sched = None
        if cfg["use_critic"]:
            self.critic = load_critic(model_path).to(self.device)
            self.critic_optim, self.critic_sched = _adamw(self.critic.parameters(),
                                                          cfg["critic"]["optim"])
        self.loss_fn = get_policy_loss_fn(self.actor["policy_loss"]["loss_mode"])
        self.verl_actor = verl_actor_config(self.actor, cfg["rollout"]["n"])

    # ------------------------------------------------------------------ rollout
    def generate(self, prompts: list[str], n: int, *, seed: int, temperature: float,
                 top_p: float, max_new_tokens: int) -> dict[str, Any]:
        """``n`` samples per prompt from the current weights, prompt-major.

        -> ``prompt_ids`` (per sample), ``response_ids``, ``texts``, ``finish_reasons``, and
        the sampler's ``rollout_log_probs`` / ``rollout_entropy`` per token (float32 arrays).
        """
        from rlboundary.samplers.tokens import as_chat, encode_prompts

        self.policy.eval()
        if (self.cfg.get("data") or {}).get("chat_template") == "model":
            prompts = as_chat(self.tokenizer, prompts)  # data.chat_template=model, as probed
        batch = self.sampler.sample(prompts, n, max_new_tokens=max_new_tokens,
                                    temperature=temperature, top_p=top_p, seed=seed)
        enc = encode_prompts(self.tokenizer, prompts)
        return {"prompt_ids": [enc[i] for i in batch.prompt_index],
                "response_ids": [t.tolist() for t in batch.token_ids], "texts": batch.texts,
                "finish_reasons": batch.finish_reasons, "rollout_log_probs": batch.logprobs,
                "rollout_entropy": batch.entropies}

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # ------------------------------------------------------------------ log-probs and values
    @torch.no_grad()
    def compute_log_probs(self, batch: dict, temperature: float, policy: bool = True
                          ) -> dict[str, torch.Tensor]:
        """``old_log_probs (B, T)`` and ``entropy (B, T)`` under the current policy (unless
        ``policy=False``: verl's bypass mode took them from the rollout), and
        ``ref_log_prob (B, T)`` under the reference model when there is one."""
        batch = self._to_device(batch)
        self.policy.eval()
        B, T = batch["responses"].shape
        keys = (["old_log_probs", "entropy"] if policy else []) + \
            (["ref_log_prob"] if self.ref is not None else [])
        out = {k: torch.zeros((B, T), dtype=torch.float32, device=self.device) for k in keys}
        for micro in micro_batches({**batch, "row": torch.arange(B, device=self.device)},
                                   int(self.actor["ppo_micro_batch_size_per_gpu"])):
            rows, width = micro["row"], micro["responses"].shape[1]
            if policy:
                lp, ent = response_logprobs(self.policy, micro, temperature)
                out["old_log_probs"][rows, :width], out["entropy"][rows, :width] = lp, ent
            if self.ref is not None:
                out["ref_log_prob"][rows, :width] = response_logprobs(self.ref, micro,
                                                                      temperature, False)[0]
        return {k: (v * batch["response_mask"]).cpu() for k, v in out.items()}

    @torch.no_grad()
    def compute_values(self, batch: dict) -> torch.Tensor:
        """The critic's ``values (B, T)`` for a batch (0 on padding)."""
        batch = self._to_device(batch)
        self.critic.eval()
        values = torch.zeros(batch["responses"].shape, device=self.device)
        for micro in micro_batches({**batch, "row": torch.arange(len(values), device=self.device)},
                                   int(self.cfg["critic"]["ppo_micro_batch_size_per_gpu"])):
            values[micro["row"], :micro["responses"].shape[1]] = response_values(self.critic, micro)
        return (values * batch["response_mask"]).cpu()

    # ------------------------------------------------------------------ updates
    def update_critic(self, batch: dict, step: int) -> dict[str, float]:
        """PPO value update on ``returns``, clipped around the rollout ``values``."""
        from verl.trainer.ppo.core_algos import compute_value_loss

        c = self.cfg["critic"]
        batch = self._to_device(batch)
        self.critic.train()
        losses, clips, norms = [], [], []
        gen = torch.Generator().manual_seed(int(self.cfg["seed"]) * 7919 + step)
        for _ in range(int(c["ppo_epochs"])):
            for rows in minibatches(len(batch["responses"]), self._mini_rows(c),
                                    gen if c["shuffle"] else None):
                mb = select(batch, rows)
                info = self._batch_info(mb)
                self.critic_optim.zero_grad(set_to_none=True)
                for micro in self._micro(mb, c):
                    vpreds = response_values(self.critic, micro)
                    loss, clip = compute_value_loss(
                        vpreds, micro["returns"], micro["values"], micro["response_mask"],
                        float(c["cliprange_value"]), c["loss_agg_mode"], **info)
                    _check_finite(loss, step, "critic/vf_loss")
                    loss.backward()
                    losses.append(loss.item())
                    clips.append(float(clip))
                norms.append(self._clip_and_step(self.critic, self.critic_optim, c, step,
                                                 "critic/grad_norm"))
        self.critic_sched.step()
        return {"critic/vf_loss": sum(losses) / max(1, len(norms)),
                "critic/vf_clipfrac": _mean(clips),
                "critic/grad_norm": _mean(norms), "critic/lr": self.critic_sched.get_last_lr()[0]}

    def update_actor(self, batch: dict, step: int) -> dict[str, float]:
        """PPO-style policy update: ``ppo_epochs`` passes over shuffled mini-batches.

        Needs ``old_log_probs``, ``advantages``, ``response_mask`` (and ``ref_log_prob`` with
        ``use_kl_loss``). Raises :class:`NonFiniteError` naming the step and the quantity when
        a loss or the gradient norm is not finite, before the optimizer steps.
        """
        from verl.trainer.ppo.core_algos import agg_loss, kl_penalty

        a, temperature = self.actor, float(self.cfg["rollout"]["temperature"])
        batch = self._to_device(batch)
        self.policy.train()
        acc: dict[str, list[float]] = {}
        gen = torch.Generator().manual_seed(int(self.cfg["seed"]) * 104729 + step)
        for _ in range(int(a["ppo_epochs"])):
            for rows in minibatches(len(batch["responses"]), self._mini_rows(a),
                                    gen if a["shuffle"] else None):
                mb = select(batch, rows)
                info = self._batch_info(mb)
                self.verl_actor.global_batch_info.update(info)
                self.optim.zero_grad(set_to_none=True)
                for micro in self._micro(mb, a):
                    mask = micro["response_mask"]
                    logp, ent = response_logprobs(self.policy, micro, temperature)
                    pg_loss, pg_metrics = self.loss_fn(
                        old_log_prob=micro["old_log_probs"], log_prob=logp,
                        advantages=micro["advantages"], response_mask=mask,
                        loss_agg_mode=a["loss_agg_mode"], config=self.verl_actor)
                    _check_finite(pg_loss, step, "actor/pg_loss")
                    entropy = agg_loss(ent, mask, a["loss_agg_mode"], **info)
                    loss = pg_loss - float(a["entropy_coeff"]) * entropy
                    metrics = {"actor/pg_loss": pg_loss.item(), "actor/entropy": entropy.item(),
                               **pg_metrics}
                    if a["use_kl_loss"]:
                        kld = kl_penalty(logp, micro["ref_log_prob"], a["kl_loss_type"])
                        kl_loss = agg_loss(kld, mask, a["loss_agg_mode"], **info)
                        _check_finite(kl_loss, step, "actor/kl_loss")
                        loss = loss + float(a["kl_loss_coef"]) * kl_loss
                        metrics["actor/kl_loss"] = kl_loss.item()
                    _check_finite(loss, step, "actor/loss")
                    loss.backward()
                    for k, v in metrics.items():
                        acc.setdefault(k, []).append(float(v))
                acc.setdefault("actor/grad_norm", []).append(
                    self._clip_and_step(self.policy, self.optim, a, step, "actor/grad_norm"))
        self.sched.step()
        out = {k: (sum(v) if k in ("actor/pg_loss", "actor/entropy", "actor/kl_loss")
                   else _mean(v)) for k, v in acc.items()}
        # pg_loss/entropy/kl_loss are sums over micro-batches of mini-batch-normalised terms:
        # divide by the number of mini-batch passes to report one mini-batch's value.
        passes = max(1, len(acc.get("actor/grad_norm", [])))
        for k in ("actor/pg_loss", "actor/entropy", "actor/kl_loss"):
            if k in out:
                out[k] /= passes
        out["actor/lr"] = self.sched.get_last_lr()[0]
        return out

    def update_sft(self, batch: dict, step: int) -> dict[str, float]:
        """One optimizer update on ``batch`` with verl's response-only SFT loss (``sft_loss``,
        normalised by the batch's response tokens, summed over micro-batches: one pass
        over the batch). Raises :class:`NonFiniteError` before the optimizer steps."""
        from rlboundary.trainer.local.batch import sft_loss

        a = self.actor
        batch = self._to_device(batch)
        self.policy.train()
        tokens = batch["response_mask"].sum()
        self.optim.zero_grad(set_to_none=True)
        total = 0.0
        for micro in self._micro(batch, a):
            logp, _ = response_logprobs(self.policy, micro, 1.0)
            loss = sft_loss(logp, micro["response_mask"], float(tokens))
            _check_finite(loss, step, "actor/sft_loss")
            loss.backward()
            total += loss.item()
        norm = self._clip_and_step(self.policy, self.optim, a, step, "actor/grad_norm")
        self.sched.step()
        return {"actor/sft_loss": total, "actor/grad_norm": norm,
                "actor/lr": self.sched.get_last_lr()[0]}

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str) -> None:
        """HF checkpoint (``save_pretrained`` + tokenizer) plus optimizer, scheduler and the
        critic, all under ``path`` (the caller makes the directory appear atomically)."""
        self.policy.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        state = {"optim": self.optim.state_dict(), "sched": self.sched.state_dict(),
                 "torch_rng": torch.get_rng_state()}
        if self.critic is not None:
            state.update(critic=self.critic.state_dict(),
                         critic_optim=self.critic_optim.state_dict(),
                         critic_sched=self.critic_sched.state_dict())
        torch.save(state, os.path.join(path, "optim_state.pt"))

    def load(self, path: str) -> None:
        """Restore what :meth:`save` wrote (weights, optimizer, scheduler, critic, RNG)."""
        from safetensors.torch import load_file

        weights = load_file(os.path.join(path, "model.safetensors"))
        missing = self.policy.load_state_dict(weights, strict=False).missing_keys
        if [k for k in missing if "lm_head" not in k]:  # tied embeddings are not stored
            raise RuntimeError(f"{path}: checkpoint lacks weights {missing[:5]}")
        self.policy.tie_weights()
        state = read_tensors(os.path.join(path, "optim_state.pt"),
                             trust=bool(self.cfg.get("trainer", {}).get("trust_checkpoint", False)))
        self.optim.load_state_dict(state["optim"])
        self.sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["torch_rng"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
            self.critic_optim.load_state_dict(state["critic_optim"])
            self.critic_sched.load_state_dict(state["critic_sched"])

    # ------------------------------------------------------------------ helpers
    def _to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v)
                for k, v in batch.items()}

    def _mini_rows(self, section: Mapping[str, Any]) -> int:
        """verl counts ``ppo_mini_batch_size`` in prompts: rows = prompts x rollout.n."""
        return int(section["ppo_mini_batch_size"]) * int(self.cfg["rollout"]["n"])

    @staticmethod
    def _micro(mb: dict, section: Mapping[str, Any]):
        return micro_batches(mb, int(section["ppo_micro_batch_size_per_gpu"]))

    @staticmethod
    def _batch_info(mb: dict) -> dict[str, Any]:
        """verl's ``global_batch_info`` for one mini-batch on one data-parallel rank."""
        return {"dp_size": 1, "batch_num_tokens": mb["response_mask"].sum(),
                "global_batch_size": len(mb["responses"])}

    @staticmethod
    def _clip_and_step(model, optim, section, step: int, name: str) -> float:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float(section["grad_clip"]))
        _check_finite(norm, step, name)
        optim.step()
        return float(norm)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
