"""``rlboundary train engine=verl``: compose, validate and launch a verl 0.9.1 V1 run, then
finish its probes.

The driver (this process) translates the config (``translate.compose_verl``), runs verl's own
``validate_config`` (which needs no GPU), and calls ``verl.trainer.main_ppo.main`` with the
composed config: verl starts (or joins) Ray, runs ``TaskRunnerV1`` and trains; our
``ProbeCallback`` probes each checkpoint from inside it. When verl returns, the driver copies
verl's metrics into RUN_DIR/metrics.jsonl, collects the probes still running on the async
actor, or (``trainer.probe=after``) probes every checkpoint now that the GPUs are free, logs the
late probe results into the same W&B run, and returns what the local engine's ``train`` returns.

``dry_run=true`` stops after validation and prints the verl config: on a laptop it checks a
cluster recipe for any ``trainer.n_gpus_per_node`` x ``trainer.nnodes``, without the weights
(``stand_in.py``), and says what it could not check.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from typing import Any

from rlboundary.errors import MissingPath, UserError
from rlboundary.hub import is_hub_id
from rlboundary.tasks.verify_worker import MAX_WORKERS_ENV
from rlboundary.trainer.verl import callback
from rlboundary.trainer.verl.stand_in import (
    NOT_CHECKED,
    model_on_disk,
    validation_copy,
    write_stand_in,
)
from rlboundary.trainer.verl.translate import (
    EXTERNAL_MODULES_ENV,
    compose_verl,
    data_files,
    validate,
)

CALLBACK_MODULE = "rlboundary.trainer.verl.callback"


def callback_settings(cfg: Mapping[str, Any], probe_settings: Mapping[str, Any] | None) -> dict:
    """What ``ProbeCallback`` reads from the verl config's ``rlboundary`` node."""
    cl = cfg["cluster"]
    return {"run_dir": os.path.abspath(cfg["run_dir"]),
            "probe": cfg["trainer"]["probe"] if probe_settings is not None else "off",
            "settings": dict(probe_settings or {}), "hf_checkpoint": cl["hf_checkpoint"],
            "save_wait_s": cl["save_wait_s"], "probe_gpus": cl["probe_gpus"]}


def wandb_id(run_dir: str, create: bool = True) -> str:
    """The W&B run id of ``run_dir`` (kept in RUN_DIR/verl_run.json so a resumed run and the
    driver's late probe results continue the run verl opened); without ``create`` nothing is
    written and a new run's id reads ``new``."""
    from rlboundary.fileio import write_json

    path = os.path.join(run_dir, "verl_run.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["wandb_id"]
    if not create:
        return "new"
    rid = uuid.uuid4().hex[:12]
    write_json(path, {"wandb_id": rid})
    return rid


def runtime_env(cfg: Mapping[str, Any], create: bool = True) -> dict[str, str]:
    """Environment of every Ray process of the run (``ray_kwargs.ray_init.runtime_env.
    env_vars``): the callback module for verl's ``VERL_USE_EXTERNAL_MODULES``, verl's file
    logger path, the verifier pool's cap (``verify.max_workers``) and the W&B run id, group,
    directory and mode."""
    from rlboundary.report.wandb_log import resolve_mode

    run_dir = os.path.abspath(cfg["run_dir"])
    env = {EXTERNAL_MODULES_ENV: CALLBACK_MODULE, "TOKENIZERS_PARALLELISM": "false",
           "VERL_FILE_LOGGER_PATH": os.path.join(run_dir, callback.VERL_METRICS),
           "WANDB_RUN_ID": wandb_id(run_dir, create), "WANDB_RESUME": "allow", "WANDB_DIR": run_dir}
    if cfg["verify"]["max_workers"] != "auto":  # each reward worker's math-verify pool
        env[MAX_WORKERS_ENV] = str(cfg["verify"]["max_workers"])
    if cfg["trainer"]["group"]:  # a sweep's name: wandb.init reads the group from here
        env["WANDB_RUN_GROUP"] = str(cfg["trainer"]["group"])
    mode = resolve_mode()
    if mode:
        env["WANDB_MODE"] = mode
    return env


def prepare(cfg: Mapping[str, Any], base_path: str, probe_settings: Mapping[str, Any] | None):
    """verl's composed and validated config for ``cfg`` (nothing launched); returns
    ``(verl_cfg, roles)`` with verl's ``use_reference_policy`` / ``use_critic``."""
    from omegaconf import OmegaConf, open_dict

    verl_cfg = compose_verl(cfg, base_path, callback_settings(cfg, probe_settings))
    with open_dict(verl_cfg):
        ray_init = verl_cfg.ray_kwargs.ray_init
        env = ray_init.runtime_env.get("env_vars")
        env = OmegaConf.to_container(env) if env is not None else {}
        ray_init.runtime_env.env_vars = {**runtime_env(cfg, create=not cfg["dry_run"]), **env}
        if cfg["ray"]["address"]:
            ray_init.address = cfg["ray"]["address"]
        if cfg["ray"]["num_cpus"] and ray_init.get("num_cpus") is None:
            ray_init.num_cpus = cfg["ray"]["num_cpus"]
    check_supported(cfg, verl_cfg)
    if cfg["dry_run"] and not model_on_disk(base_path):   # a laptop checking a cluster recipe
        with tempfile.TemporaryDirectory(prefix="rlboundary_stand_in_") as folder:
            write_stand_in(cfg["dry_run_stand_in"], folder)
            return verl_cfg, _validate(validation_copy(verl_cfg, folder))
    return verl_cfg, _validate(verl_cfg)


def _validate(verl_cfg) -> dict[str, bool]:
    from hydra.errors import InstantiationException

    try:
        return validate(verl_cfg)
    except InstantiationException as e:  # a config dataclass loads the tokenizer of a model
        raise UserError("engine=verl: verl's validation could not build a model config "
                        f"({' '.join(str(e).split())[:300]}); is base.path a local model "
                        "directory or a hub id this machine can download?") from None


def train(cfg: Mapping[str, Any], base_path: str,
          probe_settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Run verl's V1 trainer on ``cfg`` from ``base_path``, probing with ``probe_settings``
    (None: no probes). Returns ``{"train": {step: metrics}, "probes": {step: {dataset:
    metrics}}, "checkpoints": [steps], "failures": [...]}``, or with ``dry_run`` the verl
    config as ``{"verl_config": DictConfig}``. Raises ``MissingPath`` naming the ``rlboundary
    data prepare`` command when the parquet files are absent; ``UserError`` when verl rejects
    the config."""
    from omegaconf import OmegaConf

    check_job_paths(cfg, base_path)
    if not cfg["dry_run"] and not model_on_disk(base_path):
        raise MissingPath(f"base.path={base_path}: no model there (no config.json); download "
                          f"it first (e.g. huggingface-cli download Qwen/Qwen2.5-7B --local-dir "
                          f"{base_path}), or check the config without it: dry_run=true")
    verl_cfg, roles = prepare(cfg, base_path, probe_settings)
    if cfg["dry_run"]:
        print(OmegaConf.to_yaml(verl_cfg), end="")
        print(f"[rlboundary] verl validate_config passed ({verl_cfg.trainer.nnodes} node(s) x "
              f"{verl_cfg.trainer.n_gpus_per_node} GPUs; reference policy "
              f"{roles['use_reference_policy']}, critic {roles['use_critic']}); dry run: "
              "nothing launched")
        for line in not_checked(cfg, base_path):
            print(f"[rlboundary] not checked: {line}")
        return {"verl_config": verl_cfg}
    _check_data(cfg)
    _check_resume(cfg)
    import ray
    from verl.trainer.main_ppo import main as verl_main

    os.environ.update(OmegaConf.to_container(verl_cfg.ray_kwargs.ray_init.runtime_env.env_vars))
    run_dir = cfg["run_dir"]
    try:
        try:
            verl_main(verl_cfg)
        except BaseException:
            if ray.is_initialized():
                callback.kill_actor(run_dir)  # a detached actor would outlive the run
            raise
        finally:
            callback.import_train_metrics(run_dir)
        probes = finish_probes(cfg, probe_settings)
    finally:
        # verl starts Ray with this run's runtime_env (W&B id, metrics file); the next run of a
        # sweep in this process must start its own.
        if ray.is_initialized():
            ray.shutdown()
    from rlboundary.results.metrics import load_train_metrics

    train_rows = load_train_metrics(run_dir).set_index("step").to_dict("index")
    from rlboundary.probing.inputs import find_checkpoints

    ckpts = os.path.join(run_dir, "checkpoints")
    steps = [s for s, _ in find_checkpoints(ckpts)] if os.path.isdir(ckpts) else []
    return {"train": train_rows, "probes": probes, "checkpoints": steps,
            "failures": callback.failures(run_dir)}


def check_supported(cfg: Mapping[str, Any], verl_cfg) -> None:
    """What verl 0.9.1 cannot run as asked, as one ``UserError``:

    - ReMax forced onto the V1 trainer: V1 never draws the greedy baseline (only the legacy
      trainer's fit loop does), so its advantage step fails; the translation picks legacy.
    - Probes during training without V1 (only V1 calls checkpoint callbacks): use ``after``.
    - ``trainer.probe=sync`` (in the hook, in verl's TaskRunner: it sees every GPU of the node
      while verl's workers hold them, so the probe's workers would wait for GPUs forever).
    - ``trainer.keep_last`` with ``after``/``async`` probes: verl deletes old checkpoints
      before those probes reach them.
    """
    probe, v1 = cfg["trainer"]["probe"], bool(verl_cfg.trainer.use_v1)
    if v1 and verl_cfg.algorithm.adv_estimator == "remax":
        raise UserError("engine=verl: verl 0.9.1's V1 trainer has no ReMax greedy baseline; "
                        "drop verl.trainer.use_v1=true (ReMax runs verl's legacy trainer)")
    if not v1 and probe in ("sync", "async"):
        raise UserError(f"engine=verl: trainer.probe={probe} needs verl's V1 trainer (only it "
                        "calls checkpoint callbacks); use trainer.probe=after")
    if probe == "sync":
        raise UserError("engine=verl: trainer.probe=sync would probe inside verl's TaskRunner, "
                        "next to GPUs verl holds; use after, or async with cluster.probe_gpus "
                        "GPUs beyond verl's")
    if cfg["trainer"]["keep_last"] and probe in ("after", "async"):
        raise UserError("engine=verl: trainer.keep_last deletes checkpoints before the "
                        f"{probe} probes reach them; keep all (null) or set trainer.probe=off")


#: Set by Ray for a ``ray job submit`` entrypoint: the job's config as JSON, its
#: ``runtime_env`` included (ray/dashboard/modules/job/job_supervisor.py).
RAY_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def job_working_dir() -> str | None:
    """The ``working_dir`` this process was submitted with (``ray job submit --working-dir``),
    or None outside such a job. Its files are Ray's temporary copy of the uploaded folder,
    without what ``.gitignore`` lists."""
    raw = os.environ.get(RAY_JOB_CONFIG_ENV)
    if not raw:
        return None
    try:
        env = json.loads(raw).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return None
    return env.get("working_dir") or None


def check_job_paths(cfg: Mapping[str, Any], base_path: str) -> None:
    """Under ``ray job submit --working-dir``, refuse relative ``cluster.data_dir``, ``run_dir``
    and ``base.path``: they would point into Ray's temporary copy of the checkout, which holds
    no ``data/`` or ``runs/`` (``.gitignore`` keeps them out of the upload), lives on one node
    only, and may be deleted with the job. Raises ``UserError`` naming them."""
    if job_working_dir() is None:
        return
    paths = {"cluster.data_dir": cfg["cluster"]["data_dir"], "run_dir": cfg["run_dir"],
             "base.path": base_path}
    relative = [f"{key}={value}" for key, value in paths.items()
                if value and not os.path.isabs(str(value)) and not is_hub_id(str(value))]
    if relative:
        raise UserError(f"engine=verl under `ray job submit --working-dir`: {', '.join(relative)} "
                        "would point into Ray's temporary copy of the checkout (no data/ or "
                        "runs/: .gitignore keeps them out of the upload); give absolute paths "
                        "every node sees, e.g. cluster.data_dir=/shared/data "
                        "run_dir=/shared/runs/grpo")


def _check_resume(cfg: Mapping[str, Any]) -> None:
    """``resume=disable`` refuses a run_dir with checkpoints (as the local engine does); verl's
    own ``disable`` would retrain into the same global_step_N folders."""
    ckpts = os.path.join(cfg["run_dir"], "checkpoints")
    if cfg["resume"] == "disable" and os.path.isdir(ckpts) and os.listdir(ckpts):
        raise UserError(f"{cfg['run_dir']} already has checkpoints: pass resume=auto to "
                        "continue it, or another run_dir=DIR")


def not_checked(cfg: Mapping[str, Any], base_path: str) -> list[str]:
    """What a dry run could not check on this machine, one line each: the model when
    ``base_path`` is not here (validated against ``stand_in``'s config), and data files that
    are missing (with the command that writes them)."""
    lines = []
    if not model_on_disk(base_path):
        lines.append(f"the model at base.path={base_path} (not on this machine; verl "
                     f"validated a stand-in {cfg['dry_run_stand_in']} config.json, "
                     "dry_run_stand_in): " + ", ".join(NOT_CHECKED))
    lines += [problem for _, problem in _missing_data(cfg)]
    return lines


def _missing_data(cfg: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, the line saying how to write it) for every parquet file the run needs and lacks."""
    train, tests = data_files(cfg)
    out = []
    for path in [train, *tests]:
        if not os.path.exists(path):
            name = os.path.basename(os.path.dirname(path))
            out.append((path, f"{path} not found: run `rlboundary data prepare {name} --out "
                              f"{os.path.dirname(path)}` first (cluster.data_dir="
                              f"{cfg['cluster']['data_dir']})"))
    return out


def _check_data(cfg: Mapping[str, Any]) -> None:
    missing = _missing_data(cfg)
    if missing:
        raise MissingPath(missing[0][1])


def finish_probes(cfg: Mapping[str, Any], probe_settings: Mapping[str, Any] | None) -> dict:
    """After verl returns: the async actor's remaining results (it is then killed), or with
    ``trainer.probe=after`` a probe of the base and every checkpoint in RUN_DIR/checkpoints;
    the results are logged into the run's W&B run. Returns ``{step: {dataset: metrics}}``."""
    mode = callback_settings(cfg, probe_settings)["probe"]
    run_dir = cfg["run_dir"]
    late: dict[int, dict] = {}
    if mode == "async":
        late = _drain_actor(run_dir)
    elif mode == "after":
        from rlboundary.probing.runner import probe_series

        late = probe_series(os.path.join(run_dir, "checkpoints"), probe_settings)
    if late and "wandb" in (cfg["trainer"]["logger"] or []):
        _log_late(cfg, late)
    return late


def _drain_actor(run_dir: str) -> dict[int, dict]:
    import ray

    try:
        actor = ray.get_actor(callback.actor_name(run_dir))
    except ValueError:  # no checkpoint was handed to it
        return {}
    try:
        return ray.get(actor.collect.remote())
    finally:
        ray.kill(actor)


def _log_late(cfg: Mapping[str, Any], results: Mapping[int, Mapping]) -> None:
    from rlboundary.report.wandb_log import WandbLogger

    tr = cfg["trainer"]
    logger = WandbLogger(tr["project_name"], name=tr["experiment_name"],
                         id=wandb_id(cfg["run_dir"]), resume="allow",
                         dir=os.path.abspath(cfg["run_dir"]))
    with logger:
        for step, per_data in sorted(results.items()):
            for dataset, metrics in per_data.items():
                logger.log_metrics(step, dataset, metrics)
