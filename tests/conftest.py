"""Shared fixtures: the real data (skipped when absent) and one tiny base model per session."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout, or wherever $RLBOUNDARY_SHARED_DATA points.
SHARED = pathlib.Path(os.environ.get("RLBOUNDARY_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _fresh_wandb():
    """wandb reads its WANDB_* environment once per process (its setup singleton): after a
    test that used it, tear it down, so the next test's WANDB_DIR and WANDB_MODE are seen."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and hasattr(wandb, "teardown"):
        wandb.teardown()


def shared_file(name: str) -> str:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the real data lives in ../shared/data)")
    return str(path)


@pytest.fixture(scope="session")
def omni_path() -> str:
    return shared_file("omni_math_rule.jsonl")


@pytest.fixture(scope="session")
def math500_path() -> str:
    return shared_file("math500.jsonl")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> str:
    """A fresh cache dir per test session, so CI always builds from scratch."""
    path = tmp_path_factory.mktemp("rlb-cache")
    os.environ["RLBOUNDARY_CACHE"] = str(path)
    return str(path)


@pytest.fixture(scope="session")
def random_tiny_model(tmp_path_factory) -> str:
    """An untrained tiny Llama with the project's character tokenizer: for exact math on the
    model's outputs (losses, log-probs), where what it has learnt does not matter."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlboundary.trainer.base_model import build_tokenizer

    path = tmp_path_factory.mktemp("random-tiny")
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=256, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


# The one pre-trained base of a test session (~6 s on 2 cores; the default base takes ~80 s).
# 160 steps: the strength 120 steps gave the base before its heads went from 16 to 32 dimensions
# (held-out pass@1 0.005, pass@16 0.065 at n=32 on 120 problems, both shapes).
# Tests that build a base through the CLI pass these same settings, so they hit the cache entry
# `trained_base` wrote (the cache key is the hash of the base config) instead of building again.
TEST_BASE = ["base.pretrain.steps=160", "base.pretrain.batch_size=48", "base.pretrain.lr=8e-3",
             "base.pretrain.warmup_steps=10"]


@pytest.fixture(scope="session")
def base_overrides() -> list[str]:
    """Hydra overrides that name the session's test base (see TEST_BASE)."""
    return list(TEST_BASE)


@pytest.fixture(scope="session")
def trained_base(session_cache) -> str:
    """The tiny base pre-trained briefly, built once per session into the session cache: enough
    that RL sees some right answers (held-out pass@1 ~0.005 at T=1, pass@16 ~0.07)."""
    from rlboundary.commands import compose, plain
    from rlboundary.trainer.base_model import build_base

    return build_base(plain(compose(TEST_BASE).base), session_cache, progress=False)


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """../shared/data beside the checkout (or $RLBOUNDARY_SHARED_DATA); may be absent."""
    return SHARED
