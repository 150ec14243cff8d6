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
import shutil
import time
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rlboundary.tasks import TASKS, arithmetic
from rlboundary.tasks.prompts import render

# bump when the build procedure changes, so caches are not reused wrongly (2: the tokenizer
# adds BOS as the model was trained, for HF tools that tokenize text themselves, e.g. TRL)
BUILD_VERSION = 2
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
CHARS = list("0123456789+-*=? ()")


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer; the study's tags are single tokens. Like Llama's, it puts
    BOS before a text when asked for special tokens (``add_special_tokens=True``, the default of
    a plain ``tokenizer(text)``, which TRL's trainers call), as every sequence was in
    pre-training; our own code adds BOS once itself (``samplers.tokens.encode_prompts``)."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + TAGS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.add_special_tokens(SPECIALS)
    tok.add_tokens(TAGS)
    tok.decoder = decoders.Fuse()
    bos = vocab["<s>"]
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
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


def pack_batch(encoded, pad_id: int, row_len: int):
    """Pack sequences into rows of `row_len` tokens: (R, row_len) inputs, labels, position_ids.

    Position ids restart at 0 for every sequence, which transformers reads as packed sequences
    and turns into a block-diagonal causal mask, so no sequence sees another. Packing removes
    the ~60% padding a plain batch has (lengths run from ~10 to ~100 tokens) while keeping each
    batch a random mix of difficulties (sorting batches by length instead hurt accuracy).
    """
    rows: list[list[tuple[list[int], int]]] = []
    room: list[int] = []
    for ids, start in sorted(encoded, key=lambda e: -len(e[0])):  # first-fit decreasing
        if len(ids) > row_len:
            raise ValueError(f"a pre-training sequence of {len(ids)} tokens exceeds {row_len}")
        slot = next((i for i, r in enumerate(room) if r >= len(ids)), None)
        if slot is None:
            rows.append([])
            room.append(row_len)
            slot = len(rows) - 1
        rows[slot].append((ids, start))
        room[slot] -= len(ids)
    inputs = torch.full((len(rows), row_len), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), row_len), -100, dtype=torch.long)
    positions = torch.zeros((len(rows), row_len), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for ids, start in row:
            inputs[r, at:at + len(ids)] = torch.tensor(ids)
            labels[r, at + start:at + len(ids)] = torch.tensor(ids[start:])
            positions[r, at:at + len(ids)] = torch.arange(len(ids))
            at += len(ids)
        positions[r, at:] = torch.arange(row_len - at)  # padding: its own block, no loss
    return inputs, labels, positions


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain(model, tokenizer, pairs, template: str, steps: int, batch_size: int, lr: float,
             warmup_steps: int, weight_decay: float, progress: bool = True) -> list[float]:
    """AdamW with warm-up and cosine decay; loss on the completion tokens only. A text longer
    than the model's positions (the teacher's longest traces, tasks/arithmetic.long_product)
    is left out; the base's texts all fit, so its batches are as they were."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                            betas=(0.9, 0.98))
    row_len = model.config.max_position_embeddings
    encoded = [e for e in encode_pairs(tokenizer, pairs, template) if len(e[0]) <= row_len]
    losses = []
    bar = tqdm(range(steps), desc="pre-train tiny base", disable=not progress, mininterval=2)
    model.train()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup_steps)
        inputs, labels, positions = pack_batch(
            encoded[step * batch_size:(step + 1) * batch_size], tokenizer.pad_token_id, row_len)
        # use_cache=False: transformers only detects packed sequences when there is no cache.
        loss = model(input_ids=inputs, position_ids=positions, labels=labels,
                     use_cache=False).loss
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
                                         pre["min_ops"], pre["max_ops"], **cfg["noise"])
    losses = pretrain(model, tokenizer, pairs, task.template, pre["steps"],
                      pre["batch_size"], pre["lr"], pre["warmup_steps"], pre["weight_decay"],
                      progress)
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
