"""The tiny base model: tokenizer, packed pre-training batches, determinism, cache.

The default build's time is printed by bench/bench_base_build.py, never asserted here."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from rlboundary.commands import compose, plain
from rlboundary.tasks import arithmetic
from rlboundary.trainer.base_model import (
    build_base,
    build_tokenizer,
    config_hash,
    encode_pairs,
    pack_batch,
)


def test_tokenizer_is_character_level_with_tag_tokens():
    tok = build_tokenizer()
    text = "<think>12+3=15</think><answer>15</answer>"
    pieces = tok.convert_ids_to_tokens(tok(text, add_special_tokens=False).input_ids)
    assert pieces == ["<think>", "1", "2", "+", "3", "=", "1", "5", "</think>", "<answer>", "1",
                      "5", "</answer>"]
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    # a plain tokenizer(text) (HF tools such as TRL) starts with BOS, as pre-training did
    assert tok("1+2?").input_ids == [tok.bos_token_id] + tok("1+2?", add_special_tokens=False
                                                             ).input_ids


def test_packed_batch_loss_equals_per_sequence_loss():
    tok = build_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)).eval()
    import random

    pairs = [(c.text, arithmetic.noisy_solution(c, random.Random(i)))
             for i, c in enumerate(arithmetic.random_chain(random.Random(i), 1 + i % 6)
                                   for i in range(12))]
    encoded = encode_pairs(tok, pairs, "arithmetic")
    inputs, labels, positions = pack_batch(encoded, tok.pad_token_id, 256)
    assert inputs.shape[0] < len(encoded)  # several sequences share a row
    packed = model(input_ids=inputs, position_ids=positions, labels=labels, use_cache=False).loss
    total = count = 0.0
    for ids, start in encoded:
        x = torch.tensor([ids])
        y = x.clone()
        y[0, :start] = -100
        n = int((y[0, 1:] != -100).sum())
        total += model(input_ids=x, labels=y).loss.item() * n
        count += n
    assert packed.item() == pytest.approx(total / count, abs=1e-5)


def tiny_cfg(steps: int) -> dict:
    cfg = plain(compose([f"base.pretrain.steps={steps}", "base.pretrain.batch_size=16"]).base)
    return cfg


def test_same_seed_same_weights_and_cache_reuse(tmp_path):
    cfg = tiny_cfg(3)
    a = build_base(cfg, str(tmp_path / "a"), progress=False)
    b = build_base(cfg, str(tmp_path / "b"), progress=False)
    assert os.path.basename(a) == f"tiny-{config_hash(cfg)}"
    wa = AutoModelForCausalLM.from_pretrained(a).state_dict()
    wb = AutoModelForCausalLM.from_pretrained(b).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    stamp = os.path.getmtime(os.path.join(a, "model.safetensors"))
    assert build_base(cfg, str(tmp_path / "a"), progress=False) == a
    assert os.path.getmtime(os.path.join(a, "model.safetensors")) == stamp
    assert AutoTokenizer.from_pretrained(a).eos_token == "</s>"
    other = build_base({**cfg, "pretrain": {**cfg["pretrain"], "seed": 1}}, str(tmp_path / "a"),
                       progress=False)
    assert other != a
