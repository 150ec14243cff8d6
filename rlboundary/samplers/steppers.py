"""Decode steppers for the ``hf`` sampler: prefill once, then one token per call for all rows.

:class:`FastLlama` calls a Llama-family model's submodules directly with a preallocated,
block-grown KV cache and shared-prefix attention; :class:`HFStepper` is the generic fallback
through the model's own forward and ``DynamicCache``. Both expose the same three calls
(prefill, step, compact) so :mod:`rlboundary.samplers.hf` never branches on the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_FAST_TYPES = {"llama", "mistral", "qwen2"}
_BLOCK = 32  # generated-token cache grows by blocks of this many slots (see FastLlama._grow)


def prefill(model, ids: torch.Tensor, mask: torch.Tensor):
    """One forward over the (left-padded) prompts: ``-> (last logits (u, V), DynamicCache)``."""
    from transformers import DynamicCache

    pos = (mask.cumsum(1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1], out.past_key_values


class HFStepper:
    """Generic decoding through ``model.forward`` with a ``DynamicCache`` (any causal LM)."""

    def __init__(self, model):
        self.model = model

    def prefill(self, ids, mask, m: int, max_new: int) -> torch.Tensor:
        """Prefill ``u`` prompts once, copy each cache to its ``m`` rows; ``-> logits (u*m, V)``."""
        logits, self.cache = prefill(self.model, ids, mask)
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


class FastLlama:
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
        logits, cache = prefill(self.model, ids, mask)
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
