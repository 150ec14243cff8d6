"""``hf`` sampler: our own KV-cached decoding loop over a transformers causal LM (CPU or GPU).

Why not ``model.generate``: probing pass@k up to k=256 at every checkpoint means drawing
hundreds of completions per prompt from a tiny model, where per-step overhead (logits
processors, stopping criteria, cache concatenation, re-encoding the prompt for every sample)
dominates. Here each prompt is prefilled ONCE, its KV cache is copied to its ``n`` rows, and the
``(prompts x n)`` batch is stepped together:

* prompts of different lengths are left-padded; pad keys are masked and position ids count
  real tokens only, so every row sees exactly what an unpadded forward pass would;
* Llama-family models (llama, mistral, qwen2) decode through :class:`_FastLlama`: a
  preallocated KV cache (no per-step ``torch.cat``), fused QKV and gate/up matmuls, and no
  per-step mask building; any other causal LM falls back to :class:`_HFStepper`, the
  model's own forward with a ``DynamicCache``;
* finished rows are pruned from the batch (and cache) once enough of them have stopped;
* sampling is temperature + top-p via an exponential race on ``(rows, V)`` probabilities with a
  seeded ``torch.Generator``; ``T == 0`` is greedy.

Per token we record ``log_softmax(logits / T)`` of the sampled token (before top-p truncation)
and the exact entropy of ``softmax(logits / T)``.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rlboundary.trainer.samplers import SAMPLERS, SampleBatch, decode_responses
from rlboundary.trainer.scoring import dist_stats, encode_prompts

_FAST_TYPES = {"llama", "mistral", "qwen2"}
_BLOCK = 32  # generated-token cache grows by blocks of this many slots (see _FastLlama._grow)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[dtype]


@contextlib.contextmanager
def _num_threads(n: int | None):
    """Set torch's intra-op threads for the duration of a call only (the setting is global)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> ``ids (u, P)`` left-padded with ``pad_id`` and ``mask (u, P)`` (1 = real)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask


def _prefill(model, ids: torch.Tensor, mask: torch.Tensor):
    """One forward over the (left-padded) prompts: ``-> (last logits (u, V), DynamicCache)``."""
    from transformers import DynamicCache

    pos = (mask.cumsum(1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1], out.past_key_values


class _HFStepper:
    """Generic decoding through ``model.forward`` with a ``DynamicCache`` (any causal LM)."""

    def __init__(self, model):
        self.model = model

    def prefill(self, ids, mask, m: int, max_new: int) -> torch.Tensor:
        """Prefill ``u`` prompts once, copy each cache to its ``m`` rows; ``-> logits (u*m, V)``."""
        logits, self.cache = _prefill(self.model, ids, mask)
        row_src = torch.arange(ids.shape[0], device=ids.device).repeat_interleave(m)
        self.cache.batch_select_indices(row_src)
        width = ids.shape[1]
        self.mask = torch.ones((len(row_src), width + max_new), dtype=torch.long, device=ids.device)
        self.mask[:, :width] = mask[row_src]
        self.len = width
        return logits[row_src]

    def step(self, tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Feed ``tok (R,)`` at positions ``pos (R,)``; ``-> next-token logits (R, V)``."""
        self.len += 1
        out = self.model(input_ids=tok[:, None], attention_mask=self.mask[:, : self.len],
                         position_ids=pos[:, None], past_key_values=self.cache, use_cache=True)
        return out.logits[:, -1]

    def compact(self, done: torch.Tensor, below: float) -> torch.Tensor | None:
        """Drop finished rows once fewer than ``below`` are live; ``-> kept row indices | None``."""
        n_live = int((~done).sum())
        if n_live >= below * len(done):
            return None
        keep = (~done).nonzero()[:, 0]
        self.cache.batch_select_indices(keep)
        self.mask = self.mask[keep]
        return keep


class _FastLlama:
    """Decode step for Llama-style decoders, calling the model's submodules directly.

    Same math as the HF forward (RMSNorm -> fused QKV -> RoPE -> attention -> o_proj -> SwiGLU),
    minus the per-step overhead, with *shared-prefix attention*: rows form a ``(u prompts, m)``
    grid and the prompt's K/V are stored once per prompt, never copied to its ``m`` rows. Each
    step attends to the prompt with one batched GEMM per layer (the ``m`` rows of a prompt are
    the GEMM's M dimension) and to the row's own generated tokens from a preallocated cache;
    one softmax spans both. Weights are fused per ``sample`` call, so a model trained in place
    is always sampled at its current weights.
    """

    @staticmethod
    def supports(model) -> bool:
        cfg, inner = model.config, getattr(model, "model", None)
        if getattr(cfg, "model_type", None) not in _FAST_TYPES or inner is None:
            return False
        if any(getattr(cfg, k, None) for k in ("final_logit_softcapping", "attn_logit_softcapping")):
            return False
        if getattr(cfg, "pretraining_tp", 1) not in (None, 1):
            return False
        need = ("embed_tokens", "layers", "norm", "rotary_emb")
        if not all(hasattr(inner, k) for k in need) or not hasattr(model, "lm_head"):
            return False
        for layer in inner.layers:
            att = layer.self_attn
            if hasattr(att, "q_norm") or not all(hasattr(att, k) for k in ("q_proj", "o_proj")):
                return False
            if not all(hasattr(layer.mlp, k) for k in ("gate_proj", "up_proj", "down_proj")):
                return False
        return True

    def __init__(self, model):
        self.model, cfg = model, model.config
        att0 = model.model.layers[0].self_attn
        self.hd, self.scaling = att0.head_dim, att0.scaling
        self.hq, self.hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.window = getattr(cfg, "sliding_window", None) if getattr(
            cfg, "use_sliding_window", True) else None
        self.w = []
        for layer in model.model.layers:
            a, mlp = layer.self_attn, layer.mlp
            bqkv = a.q_proj.bias
            if bqkv is not None:
                bqkv = torch.cat([a.q_proj.bias * self.scaling, a.k_proj.bias, a.v_proj.bias])
            # The attention scale is folded into W_q (RoPE is linear, so it commutes).
            self.w.append((
                torch.cat([a.q_proj.weight * self.scaling, a.k_proj.weight, a.v_proj.weight]), bqkv,
                a.o_proj.weight, a.o_proj.bias,
                torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), mlp.down_proj.weight,
                mlp.down_proj.bias, mlp.act_fn, layer.input_layernorm,
                layer.post_attention_layernorm))

    def prefill(self, ids, mask, m: int, max_new: int) -> torch.Tensor:
        """HF forward over ``u`` prompts; keep their K/V ``(u, Hkv, P, D)`` once; ``-> (u*m, V)``."""
        logits, cache = _prefill(self.model, ids, mask)
        (u, width), dev = ids.shape, ids.device
        if self.window is not None and width + max_new > self.window:
            raise ValueError("sequence longer than the sliding window; use fast_path=false")
        valid = mask.bool()[:, None, :, None]
        # Zero the pad slots: a NaN there would survive a 0 attention weight.
        # Keys are stored transposed, (.., D, T): q @ K then needs no transposed operand, which
        # is markedly faster for CPU batched matmuls of this shape.
        self.kp = [torch.where(valid, c.keys, 0.0).transpose(-1, -2).contiguous()
                   for c in cache.layers]
        self.vp = [torch.where(valid, c.values, 0.0) for c in cache.layers]
        bias = torch.zeros((u, 1, 1, width), dtype=torch.float32, device=dev)
        self.pbias = bias.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
        self.max_new, self.cap = max_new, 0
        self.kg = [[] for _ in self.w]  # per layer: blocks (R, Hkv, D, _BLOCK) and (R, Hkv, _BLOCK, D)
        self.vg = [[] for _ in self.w]
        emb = self.model.model.embed_tokens.weight
        pos = torch.arange(width + max_new, device=dev)[None]
        cos, sin = self.model.model.rotary_emb(emb[:1][None], pos)
        self.cos, self.sin = cos[0], sin[0]  # (P + max_new, D)
        self.u, self.m, self.t = u, m, 0
        return logits.repeat_interleave(m, dim=0)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotary embedding of ``x (R, H, D)`` with ``cos/sin (R, 1, D)`` (HF's rotate_half form)."""
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def _grow(self) -> None:
        """Append one zero-filled block of ``_BLOCK`` generated-token slots per layer.

        The generated-token cache is a list of contiguous ``(R, Hkv, _BLOCK, D)`` blocks: on CPU
        a batched matmul over a whole contiguous tensor is several times faster than over a
        strided slice of a longer buffer, and blocks never need re-copying as the cache grows.
        Unfilled slots hold zeros and get a -inf score bias, so they weigh exactly nothing.
        """
        size = min(_BLOCK, self.max_new - self.cap)
        R, hkv, hd = self.u * self.m, self.hkv, self.hd
        for kb, vb in zip(self.kg, self.vg):
            kb.append(self.kp[0].new_zeros((R, hkv, hd, size)))  # keys transposed, as kp
            vb.append(self.kp[0].new_zeros((R, hkv, size, hd)))
        self.cap += size

    def _attend(self, i: int, q: torch.Tensor, lbias: torch.Tensor) -> torch.Tensor:
        """Attention of (pre-scaled) ``q (R, Hq, D)`` over prompt + own generated keys.

        ``lbias``: score bias of the last cache block, 0 on filled slots and -inf on the rest.
        ``-> (R, Hq * D)``.
        """
        u, m, hkv, hd = self.u, self.m, self.hkv, self.hd
        g = self.hq // hkv  # GQA: the g query heads sharing a KV head act as g queries
        R = u * m
        qg = q.view(u, m, hkv, g, hd).transpose(1, 2).reshape(u, hkv, m * g, hd)
        sp = torch.matmul(qg, self.kp[i]).float() + self.pbias
        sp = sp.view(u, hkv, m, g, -1).transpose(1, 2).reshape(R, hkv, g, -1)
        qr = q.view(R, hkv, g, hd)
        sg = [torch.matmul(qr, k).float() for k in self.kg[i]]
        sg[-1] += lbias
        w = torch.cat([sp] + sg, dim=-1).softmax(-1).to(q.dtype)
        wp, *wg = w.split([sp.shape[-1]] + [v.shape[2] for v in self.vg[i]], dim=-1)
        wp = wp.reshape(u, m, hkv, g, -1).transpose(1, 2).reshape(u, hkv, m * g, -1)
        out = torch.matmul(wp, self.vp[i]).view(u, hkv, m, g, hd).transpose(1, 2)
        for wb, vb in zip(wg, self.vg[i]):
            out = out + torch.matmul(wb, vb).view(u, m, hkv, g, hd)
        return out.reshape(R, self.hq * hd)

    def step(self, tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Feed ``tok (R,)`` at positions ``pos (R,)``; ``-> next-token logits (R, V)``."""
        inner = self.model.model
        R, hd, hq, hkv, t = tok.shape[0], self.hd, self.hq, self.hkv, self.t
        if t == self.cap:
            self._grow()
        size, col = self.kg[0][-1].shape[-1], t % _BLOCK
        lbias = torch.zeros(size, device=tok.device)
        lbias[col + 1 :] = float("-inf")
        h = inner.embed_tokens(tok)  # (R, hidden)
        cos, sin = self.cos[pos][:, None, :], self.sin[pos][:, None, :]
        for i, (wqkv, bqkv, wo, bo, wgu, wd, bd, act, ln1, ln2) in enumerate(self.w):
            qkv = F.linear(ln1(h), wqkv, bqkv)
            qk = self._rope(qkv[:, : (hq + hkv) * hd].view(R, hq + hkv, hd), cos, sin)
            self.kg[i][-1][..., col] = qk[:, hq:]
            self.vg[i][-1][:, :, col] = qkv[:, (hq + hkv) * hd :].view(R, hkv, hd)
            att = self._attend(i, qk[:, :hq], lbias)
            h = h + F.linear(att, wo, bo)
            gate, up = F.linear(ln2(h), wgu).chunk(2, dim=-1)
            h = h + F.linear(act(gate) * up, wd, bd)
        self.t = t + 1
        return self.model.lm_head(inner.norm(h))

    def compact(self, done: torch.Tensor, below: float) -> torch.Tensor | None:
        """Shrink the grid to the live rows: drop prompts with none live, and per prompt keep
        ``m' = max live count`` rows (live first). ``-> kept row indices | None``."""
        live = ~done.view(self.u, self.m)
        counts = live.sum(1)
        m2, alive = int(counts.max()), counts > 0
        u2 = int(alive.sum())
        if u2 * m2 >= below * done.numel():
            return None
        order = torch.argsort((~live).to(torch.int8), dim=1, stable=True)[alive, :m2]
        keep = (order + self.m * alive.nonzero()).reshape(-1)
        self.kp, self.vp = [x[alive] for x in self.kp], [x[alive] for x in self.vp]
        self.pbias = self.pbias[alive]
        self.kg = [[b[keep] for b in blocks] for blocks in self.kg]
        self.vg = [[b[keep] for b in blocks] for blocks in self.vg]
        self.u, self.m = u2, m2
        return keep


def _pick(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator):
    """Sample one token per row of ``logits (R, V)``: ``-> (tok (R,), logprob (R,), entropy (R,))``.

    Inverse-CDF sampling with one uniform per row (much cheaper than one random number per
    vocabulary entry). Top-p keeps the smallest prefix of the descending-sorted distribution
    whose mass reaches ``top_p``; that prefix's CDF is the plain cumsum, so sampling it only
    rescales the uniform to the kept mass. ``searchsorted(right=True)`` never lands on a
    zero-probability token.
    """
    lp, p, ent = dist_stats(logits, temperature)
    if not temperature or temperature <= 0:
        tok = logits.argmax(-1)
    else:
        u = torch.rand((p.shape[0], 1), generator=gen, device=p.device)
        if top_p < 1.0:
            ps, idx = p.sort(dim=-1, descending=True)
            cdf = ps.cumsum(-1)
            n_keep = ((cdf - ps) < top_p).sum(-1, keepdim=True)  # >= 1: first term is 0
            u = u * cdf.gather(-1, n_keep - 1)
            pick = torch.searchsorted(cdf, u, right=True).clamp_(max=n_keep - 1)
            tok = idx.gather(-1, pick)[:, 0]
        else:
            cdf = p.cumsum(-1)
            u = u * cdf[:, -1:]
            tok = torch.searchsorted(cdf, u, right=True).clamp_(max=p.shape[-1] - 1)[:, 0]
    return tok, lp.gather(-1, tok[:, None])[:, 0], ent


@SAMPLERS.register("hf")
class HFSampler:
    """Batched, KV-cached sampling from a transformers causal LM. See the module docstring.

    ``batch_size``: rows (prompt x sample pairs) per decoding batch; bounds memory. A prompt is
    prefilled once per batch it appears in (exactly once when ``batch_size >= n``).
    ``prune_below``: drop finished rows once the live fraction falls under this (0 = never).
    ``fast_path``: "auto" (Llama-family fast decoder when supported), true, or false.
    ``stop_token_ids``: extra stop tokens besides EOS; ``ignore_eos``: do not stop at EOS.
    """

    entropy_kind = "exact"

    def __init__(self, model_path: str | None = None, *, model=None, tokenizer=None,
                 batch_size: int = 1024, device: str | None = "auto", dtype: str | None = "auto",
                 torch_threads: int | None = None, fast_path="auto", prune_below: float = 0.5,
                 stop_token_ids: Sequence[int] | None = None, ignore_eos: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if model is None:
            if model_path is None:
                raise ValueError("HFSampler needs model_path or a model object")
            self.device = _resolve_device(device)
            model = AutoModelForCausalLM.from_pretrained(
                model_path, dtype=_resolve_dtype(dtype, self.device)).to(self.device)
        else:
            self.device = next(model.parameters()).device if device in (None, "auto") else \
                torch.device(device)
            model = model.to(self.device)
        self.model = model.eval()
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(
            model_path)
        self.batch_size, self.torch_threads, self.prune_below = int(batch_size), torch_threads, \
            float(prune_below)
        eos = self.tokenizer.eos_token_id
        if ignore_eos:  # benchmarking: every row runs to max_new_tokens
            eos = None
        self.stop_ids = sorted(set(stop_token_ids or []) | ({eos} if eos is not None else set()))
        if fast_path in (True, "true") and not _FastLlama.supports(model):
            raise ValueError(f"fast_path=true but {type(model).__name__} is not supported")
        self.fast = fast_path in (True, "true") or (fast_path == "auto" and _FastLlama.supports(
            model))

    def sample(self, prompts: Sequence[str], n: int, *, max_new_tokens: int,
               temperature: float = 1.0, top_p: float = 1.0, seed: int = 0) -> SampleBatch:
        """Draw ``n`` samples for each prompt; returns a prompt-major :class:`SampleBatch`."""
        enc = encode_prompts(self.tokenizer, prompts)
        if any(len(p) == 0 for p in enc):
            raise ValueError("empty prompt and no BOS token: nothing to condition on")
        S = len(enc) * n
        toks, lps, ents = [None] * S, [None] * S, [None] * S
        stops = np.zeros(S, dtype=bool)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        with _num_threads(self.torch_threads), torch.inference_mode():
            stepper = _FastLlama(self.model) if self.fast else _HFStepper(self.model)
            for pids, m, j0 in self._plan([len(e) for e in enc], n):
                out = self._decode(stepper, [enc[p] for p in pids], m, max_new_tokens,
                                   temperature, top_p, gen)
                rows = [p * n + j0 + j for p in pids for j in range(m)]
                for r, (t, lp, en, st) in zip(rows, out):
                    toks[r], lps[r], ents[r], stops[r] = t, lp, en, st
        return SampleBatch(
            prompt_index=np.repeat(np.arange(len(enc)), n),
            token_ids=toks, texts=decode_responses(self.tokenizer, toks),
            finish_reasons=["stop" if s else "length" for s in stops],
            logprobs=lps, entropies=ents,
            meta={"sampler": "hf", "fast_path": self.fast, "temperature": temperature,
                  "top_p": top_p, "seed": seed, "max_new_tokens": max_new_tokens})

    def _plan(self, lengths: list[int], n: int):
        """Batches as ``(prompt ids, m samples each, first sample index)``: a grid of prompts.

        Prompts are taken in length order so a batch pads little; ``n > batch_size`` splits a
        prompt's samples over several batches (it is then prefilled once per batch).
        """
        order = [int(p) for p in np.argsort(lengths, kind="stable")]
        if n <= self.batch_size:
            per = max(1, self.batch_size // n)
            for s in range(0, len(order), per):
                yield order[s : s + per], n, 0
        else:
            for p in order:
                for j0 in range(0, n, self.batch_size):
                    yield [p], min(self.batch_size, n - j0), j0

    def _decode(self, stepper, prompts, m, max_new, temperature, top_p, gen):
        """Decode ``m`` samples of each of ``u`` prompts (token lists); rows are prompt-major.

        ``-> [(ids, logprobs, entropies, stopped)]`` for the ``u * m`` rows.
        """
        dev = self.device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids, mask = _left_pad(prompts, pad)
        ids, mask = ids.to(dev), mask.to(dev)
        R = len(prompts) * m
        out_tok = torch.full((R, max_new), pad, dtype=torch.long, device=dev)
        out_lp = torch.zeros((R, max_new), dtype=torch.float32, device=dev)
        out_ent = torch.zeros((R, max_new), dtype=torch.float32, device=dev)
        stop_ids = torch.tensor(self.stop_ids or [-1], device=dev)
        logits = stepper.prefill(ids, mask, m, max_new)
        pos = mask.sum(1).repeat_interleave(m)  # next position id = real prompt tokens
        live = torch.arange(R, device=dev)  # output row of each batch row
        done = torch.zeros(R, dtype=torch.bool, device=dev)
        for t in range(max_new):
            tok, lp, ent = _pick(logits, temperature, top_p, gen)
            out_tok[live, t], out_lp[live, t], out_ent[live, t] = tok, lp, ent
            done |= torch.isin(tok, stop_ids)
            if t == max_new - 1:
                break
            # Host syncs: every step on CPU (free), every 8th on GPU.
            if dev.type == "cpu" or t % 8 == 7:
                if bool(done.all()):
                    break
                keep = stepper.compact(done, self.prune_below) if len(done) >= 16 else None
                if keep is not None:
                    live, done, tok, pos = live[keep], done[keep], tok[keep], pos[keep]
            logits = stepper.step(tok, pos)
            pos = pos + 1
        return self._trim(out_tok.cpu(), out_lp.cpu(), out_ent.cpu(), stop_ids.cpu())

    @staticmethod
    def _trim(tok, lp, ent, stop_ids):
        """Cut each row ``(max_new,)`` after its first stop token (kept); tail is unused garbage."""
        is_stop = torch.isin(tok, stop_ids)
        has = is_stop.any(1)
        length = torch.where(has, is_stop.int().argmax(1) + 1, tok.shape[1])
        tok, lp, ent = tok.numpy(), lp.numpy(), ent.numpy()
        return [(tok[i, :L].copy(), lp[i, :L].copy(), ent[i, :L].copy(), bool(has[i]))
                for i, L in enumerate(length.tolist())]
