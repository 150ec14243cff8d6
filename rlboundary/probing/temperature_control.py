"""``rlboundary probe model=CKPT control=temperature``: pass@k at matched token entropy.

RL lowers the policy's token entropy, and entropy alone moves pass@k at large k. The control
matches the two models' entropies by temperature, in either direction
(``temperature_control.target``):

- ``policy`` (the default; arXiv 2504.13837's entropy control, its Figure 18): the checkpoint's
  temperature is raised until its mean token entropy equals the base model's at the probe's
  temperature T; the checkpoint is probed at that T* against the base at T, into
  ``RUN_DIR/control/policy_T<T*>``.
- ``base``: the base model's temperature is lowered until its entropy equals the checkpoint's at
  T; the base is probed at T*, into ``RUN_DIR/control/base_T<T*>``.
- ``both``: one after the other.

Each direction measures the reference model's entropy on a small subset of the test problems
at T, then finds T* by bisection (``probes.match_temperature``) over the other model's
temperature on the same subset. ``RUN_DIR/control.json`` (results/control.py) holds, per
dataset and direction, T, T*, both entropies, every bisection step and the control probe's run
directory; a later direction for the same checkpoint and T joins the file, another checkpoint
or T replaces it.
The report draws the base at T, the checkpoint at T and every control on one pass@k plot.

Entropies are per-token means over the subset's samples (the sampler's ``entropies``: exact for
``hf``, the Monte-Carlo estimate for ``vllm``), every evaluation with the same seed, so the
bisection sees one deterministic function of T.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rlboundary.errors import UserError
from rlboundary.probes import match_temperature
from rlboundary.probing.provenance import chat_template
from rlboundary.results.control import read_control, write_control
from rlboundary.samplers import make_sampler
from rlboundary.samplers.tokens import as_chat
from rlboundary.tasks.prompts import render

TARGETS = ("policy", "base")


def sampled_entropy(sampler, prompts: list[str], temperature: float, settings: Mapping) -> float:
    """Mean per-token entropy (nats) of ``settings["n"]`` samples per prompt drawn at
    ``temperature`` (top-p, length, seed and chat template from ``settings``)."""
    if settings.get("chat_template") == "model":  # as the probes draw from this model
        prompts = as_chat(sampler.tokenizer, prompts)
    batch = sampler.sample(prompts, int(settings["n"]), temperature=float(temperature),
                           top_p=float(settings["top_p"]),
                           max_new_tokens=int(settings["max_new_tokens"]),
                           seed=int(settings["seed"]))
    tokens = sum(len(t) for t in batch.token_ids)
    return sum(float(e.sum()) for e in batch.entropies) / max(tokens, 1)


def matched_temperature(cfg: Mapping, reference: str, searched: str,
                        prompts: list[str]) -> dict[str, Any]:
    """Bisection for the temperature T* at which model ``searched`` has the mean token entropy
    on ``prompts`` that model ``reference`` has at ``sampling.temperature``. Returns
    ``{"temperature", "matched_temperature", "target_entropy", "matched_entropy", "trace"}``.
    Raises ``UserError`` (naming ``temperature_control.bracket``) when no temperature in the
    bracket reaches the reference's entropy."""
    ctl, samp = cfg["temperature_control"], cfg["sampling"]
    settings = {"n": ctl["n"], "top_p": samp["top_p"], "seed": cfg["probe"]["seed"],
                "max_new_tokens": samp["max_new_tokens"], "chat_template": chat_template(cfg)}
    t0 = float(samp["temperature"])
    spec = dict(cfg["sampler"])   # make_sampler ignores the config's own `name` key
    target = sampled_entropy(make_sampler(spec["name"], reference, **spec), prompts, t0,
                             settings)
    model = make_sampler(spec["name"], searched, **spec)
    lo, hi = (float(x) for x in ctl["bracket"])
    try:
        t_star, h_star, trace = match_temperature(
            lambda t: sampled_entropy(model, prompts, t, settings), target, lo, hi,
            tol=float(ctl["tol"]), max_iter=int(ctl["max_iter"]))
    except ValueError as e:
        raise UserError(f"temperature control: {e}; widen temperature_control.bracket") from None
    return {"temperature": t0, "matched_temperature": round(t_star, 4),
            "target_entropy": target, "matched_entropy": h_star,
            "trace": [[float(t), float(h)] for t, h in trace]}


def targets(cfg: Mapping) -> list[str]:
    """The directions ``temperature_control.target`` asks for, in :data:`TARGETS` order."""
    target = cfg["temperature_control"].get("target", "policy")
    return list(TARGETS) if target == "both" else [target]


def control_probe(cfg: Mapping, target: str, model_path: str, step: int, name: str,
                  spec: Mapping, t_star: float) -> tuple[str, dict]:
    """Probe the control of one direction on dataset ``name``: the checkpoint at ``t_star``
    against the base at the probe's T (``policy``), or the base at ``t_star`` (``base``).
    Returns (its run directory, its metrics)."""
    from rlboundary.probing.runner import probe_checkpoint

    sub_dir = os.path.join(cfg["run_dir"], "control", f"{target}_T{t_star:.4f}")
    sub = {**cfg, "run_dir": sub_dir, "probe": {**cfg["probe"], "datasets": {name: spec}},
           "sampling": {**cfg["sampling"], "temperature": t_star}}
    if target == "policy":
        sub["base_sampling"] = dict(cfg["sampling"])
        return sub_dir, probe_checkpoint(model_path, step, sub)[name]
    return sub_dir, probe_checkpoint(cfg["base_path"], 0, sub)[name]


def run_control(model_path: str, step: int, cfg: Mapping) -> dict[str, dict]:
    """The temperature control for checkpoint ``model_path`` (training step ``step``) on every
    probe dataset, in each direction of ``temperature_control.target``; writes
    RUN_DIR/control.json and returns it as ``{dataset: {target: entry}}`` (each entry with
    the control probe's ``run_dir`` and metrics)."""
    from rlboundary.probing.inputs import load_dataset

    run_dir = cfg["run_dir"]
    out = read_control(run_dir)
    for name, spec in cfg["probe"]["datasets"].items():
        task, records = load_dataset(name, spec, cfg["cache_dir"], cfg["probe"].get("limit"))
        subset = records[:int(cfg["temperature_control"]["problems"])]
        prompts = [render(task.template, r.problem) for r in subset]
        kept = {t: e for t, e in out.get(name, {}).items()
                if e.get("step") == int(step) and e.get("checkpoint") == os.path.abspath(
                    model_path) and e.get("temperature") == float(cfg["sampling"]["temperature"])}
        for target in targets(cfg):
            reference, searched = ((cfg["base_path"], model_path) if target == "policy"
                                   else (model_path, cfg["base_path"]))
            info = matched_temperature(cfg, reference, searched, prompts)
            t_star = info["matched_temperature"]
            sub_dir, metrics = control_probe(cfg, target, model_path, step, name, spec, t_star)
            kept[target] = {**info, "target": target, "step": int(step),
                            "checkpoint": os.path.abspath(model_path), "problems": len(subset),
                            "run_dir": os.path.abspath(sub_dir), "metrics": metrics}
            who = "checkpoint" if target == "policy" else "base"
            other = "base" if target == "policy" else "checkpoint"
            print(f"[rlboundary] temperature control {name} ({target}): {other} entropy "
                  f"{info['target_entropy']:.3f} nats at T={info['temperature']:g}; the {who} "
                  f"matches at T*={t_star:g} ({info['matched_entropy']:.3f} nats); {who} at T* "
                  f"pass@1 {metrics.get('pass@1', float('nan')):.3f}", flush=True)
            write_control(run_dir, {**out, name: kept})  # each direction kept as it ends
        out[name] = kept
    write_control(run_dir, out)
    return out
