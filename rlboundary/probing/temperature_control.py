"""``rlboundary probe model=CKPT control=temperature``: the base model at the checkpoint's entropy.

For each probe dataset: measure the checkpoint's mean token entropy on a small subset of the
test problems at the probe's temperature T; find by bisection (``probes.match_temperature``) the
temperature T* at which the base model's entropy on the same subset is the same; probe the base
at T* on the whole test set, into ``RUN_DIR/control/T<T*>`` (its own run directory, base as step
0). ``RUN_DIR/control.json`` records T, T*, both entropies and every bisection step; the report
draws the base at T, the base at T* and the checkpoint on one pass@k plot.

Entropies are per-token means over the subset's samples (the sampler's ``entropies``: exact for
``hf``, the Monte-Carlo estimate for ``vllm``), every evaluation with the same seed, so the
bisection sees one deterministic function of T.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rlboundary.fileio import write_json
from rlboundary.probes import match_temperature
from rlboundary.samplers import make_sampler
from rlboundary.tasks.prompts import render

CONTROL_FILE = "control.json"


def sampled_entropy(sampler, prompts: list[str], temperature: float, settings: Mapping) -> float:
    """Mean per-token entropy (nats) of ``settings["n"]`` samples per prompt drawn at
    ``temperature`` (top-p, length and seed from ``settings``)."""
    batch = sampler.sample(prompts, int(settings["n"]), temperature=float(temperature),
                           top_p=float(settings["top_p"]),
                           max_new_tokens=int(settings["max_new_tokens"]),
                           seed=int(settings["seed"]))
    tokens = sum(len(t) for t in batch.token_ids)
    return sum(float(e.sum()) for e in batch.entropies) / max(tokens, 1)


def matched_temperature(cfg: Mapping, model_path: str, prompts: list[str]) -> dict[str, Any]:
    """Bisection for the base temperature whose entropy on ``prompts`` equals the model's at
    ``sampling.temperature``. Returns ``{"temperature", "matched_temperature", "target_entropy",
    "matched_entropy", "trace"}``. Raises ``ValueError`` when the target lies outside the base's
    entropies over ``temperature_control.bracket``."""
    ctl, samp = cfg["temperature_control"], cfg["sampling"]
    settings = {"n": ctl["n"], "top_p": samp["top_p"], "seed": cfg["probe"]["seed"],
                "max_new_tokens": samp["max_new_tokens"]}
    t0 = float(samp["temperature"])
    spec = dict(cfg["sampler"])   # make_sampler ignores the config's own `name` key
    target = sampled_entropy(make_sampler(spec["name"], model_path, **spec), prompts, t0,
                             settings)
    base = make_sampler(spec["name"], cfg["base_path"], **spec)
    lo, hi = (float(x) for x in ctl["bracket"])
    t_star, h_star, trace = match_temperature(
        lambda t: sampled_entropy(base, prompts, t, settings), target, lo, hi,
        tol=float(ctl["tol"]), max_iter=int(ctl["max_iter"]))
    return {"temperature": t0, "matched_temperature": round(t_star, 4),
            "target_entropy": target, "matched_entropy": h_star,
            "trace": [[float(t), float(h)] for t, h in trace]}


def run_control(model_path: str, step: int, cfg: Mapping) -> dict[str, dict]:
    """The temperature control for checkpoint ``model_path`` (training step ``step``) on every
    probe dataset; writes RUN_DIR/control.json and returns its datasets' entries (each with
    ``run_dir`` of the base probe at T* and that probe's metrics)."""
    from rlboundary.probing.inputs import load_dataset
    from rlboundary.probing.runner import probe_checkpoint

    run_dir = cfg["run_dir"]
    out: dict[str, dict] = {}
    for name, spec in cfg["probe"]["datasets"].items():
        task, records = load_dataset(name, spec, cfg["cache_dir"], cfg["probe"].get("limit"))
        subset = records[:int(cfg["temperature_control"]["problems"])]
        info = matched_temperature(cfg, model_path, [render(task.template, r.problem)
                                                     for r in subset])
        t_star = info["matched_temperature"]
        sub_dir = os.path.join(run_dir, "control", f"T{t_star:.4f}")
        sub = {**cfg, "run_dir": sub_dir, "probe": {**cfg["probe"], "datasets": {name: spec}},
               "sampling": {**cfg["sampling"], "temperature": t_star}}
        metrics = probe_checkpoint(cfg["base_path"], 0, sub)[name]
        out[name] = {**info, "step": int(step), "checkpoint": os.path.abspath(model_path),
                     "problems": len(subset), "run_dir": os.path.abspath(sub_dir),
                     "metrics": metrics}
        print(f"[rlboundary] temperature control {name}: checkpoint entropy "
              f"{info['target_entropy']:.3f} nats at T={info['temperature']:g}; base matches "
              f"at T*={t_star:g} ({info['matched_entropy']:.3f} nats); base at T* pass@1 "
              f"{metrics.get('pass@1', float('nan')):.3f}", flush=True)
    write_json(os.path.join(run_dir, CONTROL_FILE), out)
    return out
