"""A model shaped like the study's: a byte-level BPE tokenizer trained here with `tokenizers`
(Qwen-style special tokens, ``<|endoftext|>`` as EOS and pad, no BOS, tens of thousands of
tokens, the study's tags split over several tokens) and a randomly initialised Qwen2 (grouped
KV heads, q/k/v biases). `train` and `probe` run it on Omni-MATH-Rule prompts under the study's
``r1_base`` template; a random model runs every response to ``max_new_tokens``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rlboundary.cli import main

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]


def bpe_tokenizer(texts, vocab_size: int):
    """Byte-level BPE trained on ``texts`` -> a transformers tokenizer, Qwen's conventions."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIALS[1:])


def qwen2(tokenizer, path: str, vocab_size: int | None = None, hidden: int = 64) -> str:
    """A random Qwen2 saved with ``tokenizer`` at ``path`` (``vocab_size`` pads the embedding
    beyond the tokenizer, as Qwen's 151,936 rows do)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab_size or len(tokenizer), hidden_size=hidden,
                      intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=32, max_position_embeddings=2048,
                      tie_word_embeddings=True, bos_token_id=None,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def omni_texts(omni_path):
    with open(omni_path) as fh:
        rows = [json.loads(line) for line in fh]
    return [f"{r['problem']}\n{r.get('solution') or ''}\n{r['answer']}" for r in rows]


@pytest.fixture(scope="module")
def real_shape(omni_texts, tmp_path_factory):
    tok = bpe_tokenizer(omni_texts, 32000)
    return qwen2(tok, str(tmp_path_factory.mktemp("qwen2-bpe")))


def test_the_tokenizer_has_the_real_shape(real_shape):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(real_shape)
    assert len(tok) > 10_000 and tok.bos_token_id is None
    assert tok.convert_ids_to_tokens(tok.eos_token_id) == "<|endoftext|>"
    for tag in TAGS:  # no tag is one token: extraction must work on decoded text
        assert len(tok.encode(tag, add_special_tokens=False)) > 1, tag


def test_answers_are_extracted_across_token_boundaries(real_shape):
    """A response whose tags and answer each span several BPE tokens, sampled token by token:
    decoded as the samplers decode, the reward finds the answer and math-verify scores it."""
    from transformers import AutoTokenizer

    from rlboundary.samplers.api import decode_responses
    from rlboundary.tasks.verify import compute_score

    tok = AutoTokenizer.from_pretrained(real_shape)
    text = "Let me add. </think> <answer>\\frac{12}{34}</answer>"
    ids = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
    pieces = tok.convert_ids_to_tokens(ids)
    assert not any("<answer>" == p for p in pieces) and len(ids) > 12
    (decoded,) = decode_responses(tok, [np.asarray(ids)])
    assert "<answer>\\frac{12}{34}</answer>" in decoded
    right = compute_score("omni_math_rule", decoded, "6/17")
    assert right["score"] == 1.0 and right["pred"] == "\\frac{12}{34}"
    assert compute_score("omni_math_rule", decoded, "1/2")["score"] == 0.0


@pytest.mark.data
@pytest.mark.slow
def test_train_and_probe_a_qwen2_bpe_model_on_omni_math(real_shape, omni_path, tmp_path):
    data = ["data=omni_math_rule", f"data.source={omni_path}", f"base.path={real_shape}",
            f"cache_dir={tmp_path / 'cache'}", "progress=false"]
    run = tmp_path / "run"
    assert main(["train", *data, f"run_dir={run}", "trainer.total_training_steps=2",
                 "trainer.save_freq=2", "trainer.probe=off", "data.train_batch_size=2",
                 "rollout.n=2", "rollout.response_length=24", "actor.ppo_mini_batch_size=2",
                 "trainer.logger=[console]", "ray.num_cpus=2", "trainer.threads=1"]) == 0
    ckpt = run / "checkpoints" / "global_step_2"
    assert (ckpt / "tokenizer.json").exists()
    assert main(["probe", *data, f"model={ckpt}", f"run_dir={tmp_path / 'probe'}", "n=4",
                 "probe.limit=6", "probe.chunk=3", "sampling.max_new_tokens=20"]) == 0
    step = pd.read_parquet(tmp_path / "probe" / "probes" / "omni_math_rule"
                           / "step_00000002.parquet")
    samples = pd.read_parquet(tmp_path / "probe" / "probes" / "omni_math_rule"
                              / "step_00000002.samples.parquet")
    assert len(step) == 6 and (step["n"] == 4).all()
    # a random model runs to max_new_tokens: responses are cut there, and scored as such
    assert (samples["finish_reason"] == "length").mean() > 0.9
    assert (samples["n_tokens"] <= 20).all() and samples["n_tokens"].max() == 20
    metrics = [json.loads(x) for x in (tmp_path / "probe" / "metrics.jsonl").read_text()
               .splitlines()]
    assert np.isfinite(metrics[-1]["ppl_base"]) and metrics[-1]["pass@1"] == 0.0


SCORE_150K = r"""
import resource, sys, numpy as np, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from rlboundary.samplers.scoring import score_nll, token_logprobs
torch.set_num_threads(2)
path = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(path).eval()
tok = AutoTokenizer.from_pretrained(path)
rng = np.random.default_rng(0)
prompts = ["Find x such that x^2 = 4. Assistant: <think>"] * 32
responses = [rng.integers(0, len(tok), 256).tolist() for _ in prompts]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
nll, counts = score_nll(model, tok, prompts, responses)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
lps, _ = token_logprobs(model, tok, prompts[:1], responses[:1])
ids = torch.tensor([tok.encode(prompts[0]) + responses[0]])
with torch.no_grad():
    ref = torch.log_softmax(model(ids).logits[0, -257:-1].double(), -1)
ref = ref.gather(1, torch.tensor(responses[0])[:, None])[:, 0].numpy()
print(peak - before, peak, float(np.abs(lps[0] - ref).max()), int(counts.sum()),
      model.config.vocab_size)
"""


@pytest.mark.slow
def test_scoring_a_150k_vocabulary_stays_within_memory(tmp_path):
    """32 responses x 256 tokens over Qwen2.5's 151,936-row vocabulary: all their logits at
    once would be 5.0 GB in float32, and log-softmax copies them; scoring batches them under
    ``MAX_LOGITS`` and grows the process by ~2.3 GB (bound: 5 GiB), with log-probs equal to
    one full forward."""
    from transformers import AutoTokenizer

    tok = bpe_tokenizer(["x^2 = 4 so x = 2 or x = -2. Find x such that"] * 4, 2000)
    path = qwen2(tok, str(tmp_path / "qwen2-150k"), vocab_size=151_936, hidden=32)
    assert AutoTokenizer.from_pretrained(path).eos_token == "<|endoftext|>"
    r = subprocess.run([sys.executable, "-c", SCORE_150K, path], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"}, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    grew_kib, peak_kib, gap, tokens, vocab = r.stdout.split()[-5:]
    assert int(vocab) == 151_936 and int(tokens) == 32 * 256
    assert float(gap) < 1e-4
    assert int(grew_kib) < 5 * 1024 * 1024, f"scoring grew the process by {int(grew_kib)} KiB"
    print(f"150k-vocabulary scoring: peak RSS {int(peak_kib) / 2**20:.2f} GiB "
          f"(+{int(grew_kib) / 2**20:.2f} GiB)")
