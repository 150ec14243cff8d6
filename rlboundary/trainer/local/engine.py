"""The one-machine engine (``engine=local``): RL on an HF causal LM with verl's own math.

Why: verl 0.9.1 trains only on GPUs (rollout through vLLM/SGLang, FSDP over NCCL), yet a
newcomer must see the study on a laptop, CI must train for real, and one-GPU research should
not need the cluster stack. This engine keeps verl's shape: the driver orchestrates and the
work runs in Ray actors, a policy worker (rollout + log-probs + updates on one copy of the
weights, verl's hybrid engine) and a probe worker that measures checkpoint N while training
goes on toward N+1. Every piece of RL math comes from ``verl.trainer.ppo.core_algos``.

Run: ``rlboundary train [--recipe recipes/tiny/grpo.yaml] [algorithm=dapo] [key=value ...]``.

Where it departs from verl: rollouts come from rlboundary's ``hf`` sampler (the probe's own),
not vLLM; the reward is computed in the driver by ``tasks.verify.compute_score`` (verl's
custom-reward signature); DAPO's dynamic sampling trains on a short batch when the round cap
is hit (verl raises); a KL-to-reference is measured every step (``trainer.track_kl``) even
when no KL term is trained, for the study's plots.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from rlboundary.console import quiet
from rlboundary.errors import Interrupted, UserError
from rlboundary.results.failures import record_failure
from rlboundary.trainer.local import checkpoint
from rlboundary.trainer.local.distill import DATA_FILE, encode_samples, sft_step, teacher_samples
from rlboundary.trainer.local.step import DataOrder, StepContext, train_step
from rlboundary.trainer.local.tracking import Tracker
from rlboundary.trainer.local.worker import NonFiniteError, PolicyWorker


class ResumeError(RuntimeError):
    """The run directory holds checkpoints but resuming was disabled (a user's choice)."""


def roles(cfg: Mapping[str, Any]) -> dict[str, bool]:
    """Which models the algorithm needs, by verl's own rules (``need_reference_policy``,
    ``need_critic``), plus a reference when ``trainer.track_kl`` asks to measure KL."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy

    view = OmegaConf.create({"algorithm": dict(cfg["algorithm"]), "critic": dict(cfg["critic"]),
                             "actor_rollout_ref": {"actor": dict(cfg["actor"])}})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        use_critic = need_critic(view)
    return {"use_ref": bool(need_reference_policy(view) or cfg["trainer"]["track_kl"]),
            "use_critic": bool(use_critic)}


def thread_budget(cfg: Mapping[str, Any], probing_beside: bool) -> tuple[int, int]:
    """(policy worker threads, probe worker threads): the cores split between the two actors
    when the probe runs beside training, all of them to the policy otherwise."""
    cores = int(cfg["ray"]["num_cpus"] or os.cpu_count() or 1)
    pol, probe = cfg["trainer"]["threads"], cfg["probe"]["threads"]
    if pol == "auto":
        pol = max(1, cores // 2) if probing_beside else cores
    if probe == "auto":
        probe = max(1, cores - int(pol)) if probing_beside else cores
    return int(pol), int(probe)


def _ray_init(ray_cfg: Mapping[str, Any], cores: int) -> None:
    """Start (or join) Ray, keeping the caller's SIGTERM handler: Ray's driver installs its
    own, which ends the process at once, where the CLI's stops the actors and says how to
    resume."""
    import signal
    import threading

    import ray

    if ray.is_initialized():
        return
    kw = dict(include_dashboard=False, log_to_driver=bool(ray_cfg["log_to_driver"]),
              configure_logging=False)
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    if ray_cfg["address"]:
        ray.init(address=ray_cfg["address"], **kw)
    else:
        ray.init(num_cpus=cores, **kw)
    if main and handler is not None:
        signal.signal(signal.SIGTERM, handler)


def _actor(cls, threads: int, *args, restarts: int = 0):
    """``cls(*args)`` as a Ray actor with one CPU (one GPU where there is one) and ``threads``
    torch threads; ``restarts``: Ray restarts a dead actor this often and retries its call."""
    import ray

    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false"}
    gpus = 1 if torch.cuda.is_available() else 0
    return ray.remote(cls).options(num_cpus=1, num_gpus=gpus, max_restarts=restarts,
                                   max_task_retries=restarts,
                                   runtime_env={"env_vars": env}).remote(*args)


def _caller(handle):
    """call(method, *args, **kw) on a Ray actor; a NonFiniteError reaches the driver as itself."""
    import ray

    def call(method: str, *args, **kw):
        try:
            return ray.get(getattr(handle, method).remote(*args, **kw))
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, NonFiniteError):
                raise NonFiniteError(str(e.cause)) from None
            raise
    return call


class ProbeWorker:
    """Runs :func:`probe_checkpoint` for the trainer, one checkpoint at a time, in step order."""

    def __init__(self, settings: Mapping[str, Any], threads: int, beside: bool = False):
        quiet(bool(settings.get("verbose")))
        torch.set_num_threads(int(threads))
        self.settings = {**settings, "progress": False}
        if beside:  # beside training: keep to `threads` cores, no second probe stage running
            self.settings["probe"] = {**settings["probe"], "post": "inline"}

    def probe(self, path: str, step: int) -> dict:
        from rlboundary.probing.runner import probe_checkpoint

        return probe_checkpoint(path, step, self.settings)


class Prober:
    """Probes of checkpoints: beside training in a Ray actor (``trainer.probe=async``),
    between steps in the driver (``sync``), or not at all (``off``).

    In ``async`` mode the last checkpoint is probed in the driver once training has ended and
    the earlier probes are in, with every core (``final_threads``): nothing trains then, so
    leaving it to the one-thread actor would idle the other cores.
    """

    def __init__(self, mode: str, settings: Mapping[str, Any] | None, threads: int,
                 final_threads: int):
        self.mode = mode if settings is not None else "off"
        self.settings, self.pending, self.results, self.deferred = settings, {}, {}, None
        self.final_threads = final_threads
        # a probe worker killed (the OOM killer) is restarted and its probe retried once
        self.actor = _actor(ProbeWorker, threads, settings, threads, True, restarts=1) \
            if self.mode == "async" else None
        self.paths: dict[int, str] = {}
        self.local = ProbeWorker(settings, threads) if self.mode == "sync" else None

    def submit(self, path: str, step: int, last: bool = False) -> None:
        if self.mode == "async" and last:
            self.deferred = (path, step)
        elif self.mode == "async":
            self.pending[step] = self.actor.probe.remote(path, step)
            self.paths[step] = path
        elif self.mode == "sync":
            self.results[step] = self.local.probe(path, step)

    def ready(self, wait: bool = False) -> list[tuple[int, dict]]:
        """Finished probes not yet handed out, in step order; with ``wait``, all of them,
        the deferred last one included."""
        import ray

        if self.pending:
            refs = list(self.pending.values())
            finished, _ = ray.wait(refs, num_returns=len(refs) if wait else 1,
                                   timeout=None if wait else 0)
            for step, ref in list(self.pending.items()):
                if ref in finished:
                    del self.pending[step]
                    try:
                        self.results[step] = ray.get(ref)
                    except ray.exceptions.RayError as e:  # died twice, or the probe failed
                        cause = getattr(e, "cause", None)
                        if isinstance(cause, UserError):  # a setting to fix: as in sync mode
                            raise cause from None
                        record_failure(self.settings["run_dir"], step, self.paths[step], e)
        if wait and self.deferred is not None:
            path, step = self.deferred
            self.results[step] = ProbeWorker(self.settings, self.final_threads).probe(path, step)
            self.deferred = None
        return [(step, self.results.pop(step)) for step in sorted(self.results)]


def _resume_point(cfg: Mapping[str, Any]) -> int:
    run_dir = cfg["run_dir"]
    gone = checkpoint.clean_partial(run_dir)
    if gone:
        print(f"[rlboundary] removed half-written checkpoint(s) {gone}")
    steps = checkpoint.complete_steps(run_dir)
    if not steps:
        return 0
    if cfg["resume"] == "disable":
        raise ResumeError(f"{run_dir} already has checkpoints up to global_step_{steps[-1]}: "
                          "pass resume=auto to continue it, or another run_dir=DIR")
    return steps[-1]


#: What the local engine implements of settings verl reads more widely (rlboundary/trainer/verl/
#: parity.py): anything else is refused, never ignored.
LOCAL_FILTER_METRICS = ("acc", "score")
LOCAL_LOGGERS = ("console", "wandb")


def refuse_unsupported(cfg: Mapping[str, Any]) -> None:
    """Raise UserError, one line naming the key, for a setting engine=local cannot honour:
    a verl-only setting (``verl.*``, ``dry_run``), a group
    filter metric other than acc/score, a logger other than console/wandb."""
    if cfg.get("verl"):
        keys = ", ".join(f"verl.{k}" for k in list(cfg["verl"])[:3])
        raise UserError(f"{keys}: verl settings apply to engine=verl only (the local engine "
                        "would ignore them); drop them or add engine=verl")
    if cfg.get("dry_run"):
        raise UserError("dry_run=true checks a verl config: it applies to engine=verl only")
    metric = cfg["algorithm"]["filter_groups"]["metric"]
    if cfg["algorithm"]["filter_groups"]["enable"] and metric not in LOCAL_FILTER_METRICS:
        raise UserError(f"algorithm.filter_groups.metric={metric}: engine=local filters groups "
                        f"on {' or '.join(LOCAL_FILTER_METRICS)}")
    other = [b for b in cfg["trainer"].get("logger") or [] if b not in LOCAL_LOGGERS]
    if other:
        raise UserError(f"trainer.logger={other}: engine=local logs to "
                        f"{' and '.join(LOCAL_LOGGERS)} (and RUN_DIR/metrics.jsonl) only")


def train(cfg: Mapping[str, Any], probe_settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Train ``cfg["policy_path"]`` for ``trainer.total_training_steps``; probe every checkpoint
    with ``probe_settings`` (the probe runner's mapping; None = no probes).

    Returns ``{"train": {step: metrics}, "probes": {step: {dataset: metrics}}, "checkpoints":
    [steps]}``. Raises :class:`NonFiniteError` (a NaN/inf loss, naming step and quantity),
    :class:`ResumeError` and UserError (:func:`refuse_unsupported`); every completed
    checkpoint and probe stays on disk.
    """
    import ray
    from transformers import AutoTokenizer

    from rlboundary.tasks import TASKS

    refuse_unsupported(cfg)
    cfg = {**cfg, **roles(cfg)}
    quiet(bool(cfg.get("verbose")))
    run_dir, tr = cfg["run_dir"], cfg["trainer"]
    os.makedirs(run_dir, exist_ok=True)
    torch.set_num_threads(1)  # the driver only computes advantages
    start = _resume_point(cfg)
    state = checkpoint.load_state(run_dir, start) if start else {}
    if start:
        print(f"[rlboundary] resuming {run_dir} from {checkpoint.step_dir(run_dir, start)}"
              f"{_stored_probes(run_dir, probe_settings)}", flush=True)
    task = TASKS.get(cfg["data"]["name"])
    distilling = bool(cfg["distill"]["enable"])
    records = sorted((r for r in task.load(cache_dir=cfg["cache_dir"], **cfg["data"])
                      if r.split == "train"), key=lambda r: r.id)
    mode = tr["probe"] if probe_settings is not None else "off"
    pol_threads, probe_threads = thread_budget(cfg, mode == "async")
    _ray_init(cfg["ray"], int(cfg["ray"]["num_cpus"] or os.cpu_count() or 1))
    tracker = Tracker(run_dir, tr, cfg, state.get("wandb_id"))
    actors: list = []
    out: dict[str, Any] = {"train": {}, "probes": {}}
    try:
        worker = _actor(PolicyWorker, pol_threads, cfg["policy_path"], cfg, pol_threads)
        actors.append(worker)
        call = _caller(worker)
        if start:
            call("load", checkpoint.step_dir(run_dir, start))
        tokenizer = AutoTokenizer.from_pretrained(cfg["policy_path"])
        items = _distill_pairs(cfg, tokenizer, task, records) if distilling else records
        ctx = StepContext(cfg=cfg, call=call, task=task,
                          data=DataOrder(items, cfg["seed"], **state.get("data", {})),
                          pad_id=_pad_id(tokenizer), kl_ctrl=_kl_controller(cfg, state),
                          step_fn=sft_step if distilling else train_step)
        prober = Prober(mode, probe_settings, probe_threads, thread_budget(cfg, False)[1])
        actors += [prober.actor] if prober.actor is not None else []
        prober.submit(probe_settings["base_path"] if probe_settings else "", 0)
        for s in checkpoint.complete_steps(run_dir):  # cached unless a kill interrupted it
            prober.submit(checkpoint.step_dir(run_dir, s), s)
        try:
            _loop(ctx, start, worker, tracker, prober, out)
            for step, res in prober.ready(wait=True):
                tracker.log_probe(step, res)
                out["probes"][step] = res
        except KeyboardInterrupt as e:
            raise _interrupted(run_dir, max(out["train"], default=start) + 1,
                               getattr(e, "signum", 2)) from None
    finally:
        tracker.finish()
        for actor in actors:
            ray.kill(actor)
    out["checkpoints"] = checkpoint.complete_steps(run_dir)
    return out


def _stored_probes(run_dir: str, probe_settings: Mapping[str, Any] | None) -> str:
    """"; probes stored for steps 0, 25 (arithmetic) are reused" for the resume line."""
    from rlboundary.probing.metrics import stored_steps

    found = [f"steps {', '.join(map(str, steps))} ({name})"
             for name in (probe_settings or {}).get("probe", {}).get("datasets", {})
             if (steps := stored_steps(run_dir, name))]
    return f"; probes stored for {'; '.join(found)} are reused" if found else ""


def _interrupted(run_dir: str, step: int, signum: int) -> Interrupted:
    """The one line a Ctrl-C or SIGTERM during training ends with: where, and how to go on."""
    import shlex
    import sys

    done = checkpoint.complete_steps(run_dir)
    last = checkpoint.step_dir(run_dir, done[-1]) if done else "none yet"
    what = "SIGTERM" if signum == 15 else "Ctrl-C"
    return Interrupted(f"{what}: training stopped during step {step}; last complete checkpoint: "
                       f"{last}; run the same command again to resume from it (resume=auto): "
                       f"rlboundary {shlex.join(sys.argv[1:])}", signum)


def _loop(ctx: StepContext, start: int, worker, tracker: Tracker, prober: Prober,
          out: dict) -> None:
    import ray

    cfg, tr = ctx.cfg, ctx.cfg["trainer"]
    total, freq = int(tr["total_training_steps"]), int(tr["save_freq"] or 0)
    bar = tqdm(range(start + 1, total + 1), initial=start, total=total, desc="train",
               unit="step", disable=not cfg["progress"], mininterval=1)
    for step in bar:
        metrics = ctx.step_fn(ctx, step)
        tracker.log_train(step, metrics)
        out["train"][step] = metrics
        shown = "train/reward" if "train/reward" in metrics else "actor/sft_loss"
        bar.set_postfix({shown.split("/")[1]: f"{metrics[shown]:.3f}",
                         "step_s": f"{metrics['timing_s/step']:.2f}"}, refresh=False)
        if freq and (step % freq == 0 or step == total):
            state = {"data": ctx.data.state(), "wandb_id": tracker.wandb_id,
                     "kl_coef": ctx.kl_ctrl.value if ctx.kl_ctrl is not None else None}
            path = checkpoint.save(cfg["run_dir"], step,
                                   lambda d: ray.get(worker.save.remote(d)), state)
            prober.submit(path, step, last=step == total)
            checkpoint.prune(cfg["run_dir"], tr["keep_last"], set(prober.pending))
        for s, res in prober.ready():
            tracker.log_probe(s, res)
            out["probes"][s] = res
            _print_probe(bar, s, res)
    bar.close()


def _print_probe(bar, step: int, results: Mapping[str, Mapping[str, float]]) -> None:
    for name, m in results.items():
        cells = "  ".join(f"{k} {m[k]:.3f}" for k in ("pass@1", "pass@256", "ppl_base",
                                                       "entropy") if k in m)
        bar.write(f"  probe step {step} {name}: {cells}")


def _distill_pairs(cfg: Mapping[str, Any], tokenizer, task, records) -> list:
    """``algorithm=distill``: the teacher's verified samples as (prompt ids, response ids)."""
    kept = teacher_samples(cfg, cfg["teacher_path"], task, records)
    sampled = min(len(records), cfg["distill"]["problems"] or len(records))
    print(f"[rlboundary] distill: {len(kept)} verified teacher samples on "
          f"{kept['problem_id'].nunique()} of {sampled} training problems "
          f"({os.path.join(cfg['run_dir'], DATA_FILE)})", flush=True)
    return encode_samples(tokenizer, task.template, kept)


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _kl_controller(cfg: Mapping[str, Any], state: Mapping[str, Any]):
    """verl's KL controller for the in-reward KL, restored to its saved coefficient."""
    if not cfg["algorithm"]["use_kl_in_reward"]:
        return None
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_kl_controller

    ctrl = get_kl_controller(OmegaConf.create(dict(cfg["algorithm"]["kl_ctrl"])))
    if state.get("kl_coef") is not None:
        ctrl.value = state["kl_coef"]
    return ctrl
