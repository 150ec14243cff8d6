"""Samplers and teacher-forced scoring on a tiny random Llama with a character-level tokenizer.

The central check: what the sampler records per token (logprob, entropy) equals a separate
teacher-forced forward pass over ``prompt + response`` -- which catches left-padding, position
id, KV-cache expansion and pruning mistakes all at once.
"""

from __future__ import annotations

import builtins
import string

import numpy as np
import pytest
import torch

from rlboundary.samplers import SAMPLERS, SampleBatch, make_sampler
from rlboundary.samplers.hf import HFSampler
from rlboundary.samplers.scoring import score_nll, token_logprobs
from rlboundary.samplers.tokens import encode_prompts

SPECIALS = ["<pad>", "<s>", "</s>", "<think>", "</think>", "<answer>", "</answer>"]
CHARS = list(string.digits + "+-*= ") + list("abcdefghijklmnopqrst")
PROMPTS = ["1+2=", "12*34-5=", "<think>", "abc def ghij klm="]  # different lengths


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<pad>")
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[3:]})
    return fast


def make_model(vocab_size: int, kv_heads: int = 4, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=192,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=kv_heads,
                      max_position_embeddings=256, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # sharper than init so sampling is not uniform noise
        for p in model.parameters():
            p.mul_(4.0) if p.dim() == 2 else None
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A saved tiny model + tokenizer: ``(path, model, tokenizer)``."""
    tok = make_tokenizer()
    model = make_model(len(tok))
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path), model, tok


def _check_against_teacher_forcing(sampler, batch, prompts, n, temperature, top_p=1.0):
    tf_lp, tf_ent = token_logprobs(sampler.model, sampler.tokenizer,
                                   [prompts[i] for i in batch.prompt_index], batch.token_ids,
                                   temperature=temperature, top_p=top_p, batch_size=16)
    assert sum(len(t) for t in batch.token_ids) > 0
    for got, want in zip(batch.logprobs, tf_lp):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    for got, want in zip(batch.entropies, tf_ent):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_tokenizer_roundtrip_and_bos():
    tok = make_tokenizer()
    ids = encode_prompts(tok, ["1+2=<think>"])[0]
    assert ids[0] == tok.bos_token_id
    assert tok.convert_ids_to_tokens(ids[-1]) == "<think>"
    assert tok.decode(ids[1:]) == "1+2=<think>"


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_logprobs_match_teacher_forcing(tiny, fast_path, temperature, top_p):
    path, _, _ = tiny
    s = HFSampler(path, batch_size=24, fast_path=fast_path)  # 24 rows: prompts span batches
    n = 5
    b = s.sample(PROMPTS, n, max_new_tokens=12, temperature=temperature, top_p=top_p, seed=3)
    assert len(b) == len(PROMPTS) * n
    _check_against_teacher_forcing(s, b, PROMPTS, n, temperature, top_p)


def test_gqa_and_pruning_match_teacher_forcing():
    tok = make_tokenizer()
    model = make_model(len(tok), kv_heads=2, seed=1)
    # Bias the model towards EOS so rows finish at different steps and pruning kicks in.
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] += 0.1 * model.model.norm.weight.sign()
    s = HFSampler(model=model, tokenizer=tok, batch_size=64, prune_below=0.9)
    assert s.fast
    b = s.sample(PROMPTS, 16, max_new_tokens=30, temperature=1.0, top_p=1.0, seed=0)
    reasons = set(b.finish_reasons)
    assert "stop" in reasons
    _check_against_teacher_forcing(s, b, PROMPTS, 16, 1.0)


def test_same_seed_same_samples(tiny):
    path, _, _ = tiny
    s = HFSampler(path)
    kw = dict(max_new_tokens=10, temperature=1.0, top_p=0.95)
    a = s.sample(PROMPTS, 4, seed=11, **kw)
    b = s.sample(PROMPTS, 4, seed=11, **kw)
    c = s.sample(PROMPTS, 4, seed=12, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a.token_ids, b.token_ids))
    assert a.texts == b.texts
    assert not all(np.array_equal(x, y) for x, y in zip(a.token_ids, c.token_ids))


def test_fast_and_generic_paths_agree(tiny):
    path, _, _ = tiny
    kw = dict(max_new_tokens=10, temperature=0.8, top_p=0.9, seed=5)
    a = HFSampler(path, fast_path=True, prune_below=0).sample(PROMPTS, 3, **kw)
    b = HFSampler(path, fast_path=False, prune_below=0).sample(PROMPTS, 3, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a.token_ids, b.token_ids))


def test_greedy_is_deterministic_and_argmax(tiny):
    path, model, tok = tiny
    s = HFSampler(path)
    b = s.sample(PROMPTS[:2], 3, max_new_tokens=8, temperature=0.0, top_p=1.0, seed=0)
    assert all(np.array_equal(b.token_ids[0], t) for t in b.token_ids[:3])
    ids = torch.tensor([encode_prompts(tok, PROMPTS[:1])[0]])
    assert int(model(input_ids=ids).logits[0, -1].argmax()) == int(b.token_ids[0][0])


def test_eos_stops_row_and_finish_reason(tiny):
    _, model, tok = tiny
    eos = tok.eos_token_id
    m = make_model(len(tok))
    m.load_state_dict(model.state_dict())
    with torch.no_grad():  # make EOS likely (never certain): some rows stop, some run on
        m.lm_head.weight[eos] = 0.0
        m.lm_head.weight[eos, 0] = 1.0
    s = HFSampler(model=m, tokenizer=tok)
    b = s.sample(PROMPTS, 8, max_new_tokens=6, temperature=1.0, top_p=1.0, seed=0)
    for ids, reason, text in zip(b.token_ids, b.finish_reasons, b.texts):
        stops = np.flatnonzero(ids == eos)
        if reason == "stop":
            assert stops.tolist() == [len(ids) - 1]  # EOS kept, last, and only once
            assert "</s>" not in text
        else:
            assert len(ids) == 6 and len(stops) == 0
    assert set(b.finish_reasons) == {"stop", "length"}


def test_prompt_major_order_and_fields(tiny):
    path, _, _tok = tiny
    b = make_sampler("hf", path, batch_size=7).sample(
        PROMPTS, 3, max_new_tokens=4, temperature=1.0, top_p=1.0, seed=0)
    assert isinstance(b, SampleBatch)
    assert b.prompt_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert all(t.dtype == np.int64 for t in b.token_ids)
    assert all(x.dtype == np.float32 for x in b.logprobs + b.entropies)
    assert all(len(t) == len(lp) == len(e) for t, lp, e in
               zip(b.token_ids, b.logprobs, b.entropies))
    # Each sample is conditioned on its own prompt: compare with that prompt sampled alone.
    one = make_sampler("hf", path).sample([PROMPTS[3]], 1, max_new_tokens=4, temperature=0.0,
                                          top_p=1.0, seed=0)
    all_ = make_sampler("hf", path).sample(PROMPTS, 1, max_new_tokens=4, temperature=0.0,
                                           top_p=1.0, seed=0)
    assert np.array_equal(one.token_ids[0], all_.token_ids[3])
    assert HFSampler.entropy_kind == "exact"


def test_score_nll_equals_sampler_logprobs(tiny):
    path, model, tok = tiny
    s = HFSampler(path)
    b = s.sample(PROMPTS, 4, max_new_tokens=10, temperature=1.0, top_p=1.0, seed=2)
    nll, ntok = score_nll(model, tok, [PROMPTS[i] for i in b.prompt_index], b.token_ids,
                          batch_size=5, device="cpu")
    assert nll.shape == ntok.shape == (len(b),)
    np.testing.assert_array_equal(ntok, b.lengths)
    want = np.array([-lp.astype(np.float64).sum() for lp in b.logprobs])
    np.testing.assert_allclose(nll, want, atol=1e-3, rtol=1e-5)
    z, zt = score_nll(model, tok, ["1+"], [[]])
    assert z.tolist() == [0.0] and zt.tolist() == [0]


def test_shared_prompt_scoring_equals_one_padded_pass(tiny):
    """Rows sharing a prompt read it once from a KV cache (scoring._forward_shared); one row
    per batch takes the padded path: both give the same log-probabilities and entropies."""
    path, model, tok = tiny
    b = HFSampler(path).sample(PROMPTS[:3], 6, max_new_tokens=12, temperature=1.0,
                               top_p=1.0, seed=5)
    prompts = [PROMPTS[i] for i in b.prompt_index]
    shared = token_logprobs(model, tok, prompts, b.token_ids, temperature=0.7, batch_size=64)
    single = token_logprobs(model, tok, prompts, b.token_ids, temperature=0.7, batch_size=1)
    for a, c in zip(shared[0] + shared[1], single[0] + single[1]):
        np.testing.assert_allclose(a, c, atol=1e-5, rtol=1e-5)
    nll, _ = score_nll(model, tok, prompts, b.token_ids, batch_size=64)
    want = [-float(x.astype(np.float64).sum()) for x in token_logprobs(
        model, tok, prompts, b.token_ids, batch_size=1)[0]]
    np.testing.assert_allclose(nll, want, atol=1e-4)


def test_torch_threads_restored(tiny):
    path, _, _ = tiny
    before = torch.get_num_threads()
    HFSampler(path, torch_threads=1).sample(PROMPTS[:1], 2, max_new_tokens=3, temperature=1.0,
                                            top_p=1.0, seed=0)
    assert torch.get_num_threads() == before


def test_registry_and_vllm_import_error(monkeypatch):
    assert {"hf", "vllm"} <= set(SAMPLERS.names())
    real_import = builtins.__import__

    def no_vllm(name, *a, **kw):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(ImportError, match=r"pip install rlboundary\[gpu\]"):
        make_sampler("vllm", "/nonexistent")
    assert SAMPLERS.get("vllm").entropy_kind == "mc"


def _nucleus_logprob_by_hand(logits: np.ndarray, token: int, temperature: float, top_p: float):
    """vLLM's processed logprob of ``token``, from scratch in float64: tempered softmax, keep the
    smallest descending prefix reaching ``top_p``, renormalise. Also that nucleus's entropy."""
    x = logits.astype(np.float64) / temperature
    p = np.exp(x - x.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    keep = order[(np.cumsum(ps) - ps) < top_p]
    q = p[keep] / p[keep].sum()
    lookup = dict(zip(keep.tolist(), q.tolist()))
    return (np.log(lookup[token]) if token in lookup else -np.inf), float(-(q * np.log(q)).sum())


def test_both_samplers_record_the_nucleus_at_t06_p095(tiny):
    """At the study's T=0.6, top-p 0.95 the hf sampler records what vLLM's processed logprobs
    hold (the renormalised nucleus), checked against an independent float64 computation; the
    vLLM-style Monte-Carlo entropy (mean -logprob) estimates the recorded exact entropy."""
    path, _, _ = tiny
    s = HFSampler(path, batch_size=256)
    b = s.sample(PROMPTS, 32, max_new_tokens=10, temperature=0.6, top_p=0.95, seed=0)
    enc = encode_prompts(s.tokenizer, PROMPTS)
    got_lp, want_lp, got_ent, want_ent = [], [], [], []
    with torch.no_grad():
        for i, toks in enumerate(b.token_ids[::8]):  # every 8th sample: enough, and fast
            row = i * 8
            ids = torch.tensor([enc[b.prompt_index[row]] + [int(t) for t in toks]])
            logits = s.model(input_ids=ids).logits[0].numpy()
            start = len(enc[b.prompt_index[row]]) - 1
            for j, t in enumerate(toks):
                lp, ent = _nucleus_logprob_by_hand(logits[start + j], int(t), 0.6, 0.95)
                want_lp.append(lp)
                want_ent.append(ent)
            got_lp += b.logprobs[row].tolist()
            got_ent += b.entropies[row].tolist()
    assert np.isfinite(want_lp).all()  # every sampled token lies inside the nucleus
    np.testing.assert_allclose(got_lp, want_lp, atol=2e-4)
    np.testing.assert_allclose(got_ent, want_ent, atol=2e-4)
    all_lp = np.concatenate(b.logprobs)
    all_ent = np.concatenate(b.entropies)
    mc, se = -all_lp.mean(), all_lp.std() / np.sqrt(all_lp.size)
    assert abs(mc - all_ent.mean()) < 4 * se + 1e-3  # entropy_mc estimates the same entropy
