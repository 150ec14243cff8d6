"""Build the tiny base model: a character-level tokenizer and a small Llama pre-trained from
scratch on noisy arithmetic traces, saved with `save_pretrained` like any HF checkpoint.

Why build one: no weights can be downloaded on a CI box or a newcomer's laptop, and the study's
finding only shows on a base model whose support is broad but unreliable. Pre-training on a
noisy trace mixture (see `tasks/arithmetic.py`) gives a model with pass@1 well below pass@256.

Run: ``rlboundary base build`` (settings in ``conf/base/tiny.yaml``). The result is cached by a
hash of its settings under ``<cache_dir>/base/``; the same seed gives the same weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rlboundary.tasks import TASKS, arithmetic
from rlboundary.tasks.prompts import render

BUILD_VERSION = 1  # bump when the build procedure changes, so caches are not reused wrongly
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
CHARS = list("0123456789+-*=? ()")


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer; the study's tags are single tokens."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + TAGS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.add_special_tokens(SPECIALS)
    tok.add_tokens(TAGS)
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def config_hash(cfg: dict[str, Any]) -> str:
    blob = json.dumps({"v": BUILD_VERSION, **cfg}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def encode_pairs(tokenizer, pairs: list[tuple[str, str]], template: str):
    """Token ids (BOS + prompt + completion + EOS) and the index where the completion starts."""
    prompts = tokenizer([render(template, p) for p, _ in pairs],
                        add_special_tokens=False).input_ids
    comps = tokenizer([c for _, c in pairs], add_special_tokens=False).input_ids
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return [([bos] + p + c + [eos], 1 + len(p)) for p, c in zip(prompts, comps)]


def make_batch(encoded, pad_id: int):
    """Right-padded (B, T) inputs and labels with -100 outside the completion (answer-only loss).

    No attention mask is needed: pads sit after every real token, so causal attention never
    lets a real token see one, and pads carry no loss.
    """
    T = max(len(ids) for ids, _ in encoded)
    inputs = torch.full((len(encoded), T), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), T), -100, dtype=torch.long)
    for i, (ids, start) in enumerate(encoded):
        inputs[i, : len(ids)] = torch.tensor(ids)
        labels[i, start: len(ids)] = torch.tensor(ids[start:])
    return inputs, labels


def length_bucketed(encoded, batch_size: int, seed: int, group: int = 16):
    """Batches whose sequences have similar lengths (sorted within groups of `group` batches,
    then shuffled): 2.5x less padding, since lengths run from ~10 to ~100 tokens."""
    rng = random.Random(seed)
    batches = []
    span = batch_size * group
    for g in range(0, len(encoded), span):
        chunk = sorted(encoded[g:g + span], key=lambda e: len(e[0]))
        part = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(part)
        batches += part
    return batches


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain(model, tokenizer, pairs, template: str, steps: int, batch_size: int, lr: float,
             warmup_steps: int, weight_decay: float, seed: int = 0,
             progress: bool = True) -> list[float]:
    """AdamW with warm-up and cosine decay; loss on the completion tokens only."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                            betas=(0.9, 0.98))
    batches = length_bucketed(encode_pairs(tokenizer, pairs, template), batch_size, seed)
    losses = []
    bar = tqdm(range(steps), desc="pre-train tiny base", disable=not progress, mininterval=2)
    model.train()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup_steps)
        inputs, labels = make_batch(batches[step], tokenizer.pad_token_id)
        loss = model(input_ids=inputs, labels=labels).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pre-training loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    return losses


def build_base(cfg: dict[str, Any], cache_dir: str, force: bool = False,
               progress: bool = True) -> str:
    """Build (or reuse) the tiny base model for `cfg` (the `base` config group); return its dir."""
    out = os.path.join(cache_dir, "base", f"{cfg['name']}-{config_hash(cfg)}")
    if os.path.exists(os.path.join(out, "build_info.json")) and not force:
        return out
    t0 = time.time()
    pre = cfg["pretrain"]
    torch.manual_seed(pre["seed"])
    torch.set_num_threads(pre.get("torch_threads", 1))
    tokenizer = build_tokenizer()
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        **cfg["arch"]))
    task_cfg = dict(cfg["task"])
    task = TASKS.get(task_cfg.pop("name"))
    held = {r.problem for r in task.load(**task_cfg)}
    pairs = arithmetic.pretraining_texts(pre["seed"], pre["steps"] * pre["batch_size"], held,
                                         **cfg["noise"])
    losses = pretrain(model, tokenizer, pairs, task.template, pre["steps"],
                      pre["batch_size"], pre["lr"], pre["warmup_steps"], pre["weight_decay"],
                      pre["seed"], progress)
    tmp = out + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    info = {"config": cfg, "hash": config_hash(cfg), "seconds": time.time() - t0,
            "params": sum(p.numel() for p in model.parameters()),
            "final_loss": sum(losses[-50:]) / len(losses[-50:]), "held_out_excluded": len(held)}
    with open(os.path.join(tmp, "build_info.json"), "w") as fh:
        json.dump(info, fh, indent=2, default=str)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
