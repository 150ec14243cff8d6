"""The work behind rlboundary's commands, shared by the command line (cli.py) and the sweep
jobs Hydra runs (sweep.py): compose and check a config, build or find the base model, probe,
train with either engine, write the report. Only these modules read Hydra configs; everything
they call takes plain mappings (:func:`plain`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf, open_dict

from rlboundary import hub
from rlboundary.cli_args import verl_keys
from rlboundary.errors import UserError
from rlboundary.hydra_scope import first_line, own_hydra
from rlboundary.settings_check import check_settings


def compose_hydra(overrides: list[str], multirun: bool = False) -> DictConfig:
    """The config of conf/config.yaml with ``overrides``, its ``hydra`` node included (where a
    sweep writes, how it names jobs); with ``multirun`` a sweep's comma lists are left for the
    sweeper. Raises ``UserError`` with Hydra's first line when the overrides do not compose."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    mode = RunMode.MULTIRUN if multirun else RunMode.RUN
    try:
        with own_hydra(), initialize_config_module(config_module="rlboundary.conf",
                                                   version_base=None):
            return GlobalHydra.instance().hydra.compose_config(
                "config", verl_keys(overrides), run_mode=mode, from_shell=False,
                with_log_configuration=False)
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(f"bad setting: {first_line(e)} (rlboundary COMMAND --help lists the "
                        f"settings)") from None


def settle(cfg: DictConfig) -> DictConfig:
    """Check a composed config's settings (``UserError`` naming the bad one), quiet
    third-party output unless ``verbose``, and cap the verifier's worker pool
    (``verify.max_workers``) here and in the processes this one starts; returns ``cfg``."""
    from rlboundary.console import quiet
    from rlboundary.tasks.verify_worker import MAX_WORKERS_ENV

    check_settings(cfg)
    quiet(bool(cfg.get("verbose", False)))
    workers = cfg.get("verify", {}).get("max_workers", "auto")
    if workers != "auto":  # this process's verifier pool, and every process it starts
        os.environ[MAX_WORKERS_ENV] = str(workers)
    else:  # a sweep's earlier job may have set it
        os.environ.pop(MAX_WORKERS_ENV, None)
    return cfg


def without_hydra(cfg: DictConfig) -> DictConfig:
    """``cfg`` less its ``hydra`` node (as Hydra's compose API returns it)."""
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def compose(overrides: list[str]) -> DictConfig:
    """The checked config a command runs with (no ``hydra`` node); see ``compose_hydra``."""
    return settle(without_hydra(compose_hydra(overrides)))


def plain(cfg) -> dict:
    """A config node as plain, resolved Python containers (what every non-CLI module takes)."""
    return OmegaConf.to_container(cfg, resolve=True)


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Print a phase's start and its duration (seconds), recorded in ``timings[name]``."""
    t0 = time.perf_counter()
    print(f"[rlboundary] {name} ...", flush=True)
    yield
    timings[name] = time.perf_counter() - t0
    print(f"[rlboundary] {name} done in {timings[name]:.1f} s", flush=True)


def build_base(cfg: DictConfig, timings: dict[str, float]) -> str:
    from rlboundary.trainer.base_model import build_base as _build

    with phase("build tiny base model", timings):
        path = _build(plain(cfg.base), cfg.cache_dir, force=cfg.force, progress=cfg.progress)
    with open(f"{path}/build_info.json") as fh:
        info = json.load(fh)
    print(f"  {path}: {info['params']:,} parameters, final loss {info['final_loss']:.3f}, "
          f"built in {info['seconds']:.0f} s")
    return path


def heldout_accuracy(cfg: DictConfig, model_path: str, timings: dict[str, float]) -> None:
    """Mean accuracy over `eval_samples` samples per held-out problem, by difficulty."""
    from rlboundary.samplers import make_sampler
    from rlboundary.samplers.rollout import accuracy_by_difficulty, sample_and_score
    from rlboundary.tasks import TASKS

    data = plain(cfg.data)
    task = TASKS.get(data.pop("name"))
    split = data.pop("probe_split", "test")
    records = [r for r in task.load(cache_dir=cfg.cache_dir, **data) if r.split == split]
    sampler_kw = plain(cfg.sampler)
    sampler = make_sampler(sampler_kw.pop("name"), model_path, **sampler_kw)
    k = cfg.eval_samples
    with phase(f"sample {k} x {len(records)} held-out problems", timings):
        scored = sample_and_score(sampler, task, records, n=k, seed=cfg.seed,
                                  progress=cfg.progress, **plain(cfg.sampling))
    print(f"\nheld-out accuracy of the base model ({k} samples per problem, "
          f"T={cfg.sampling.temperature}):")
    print(accuracy_by_difficulty(scored, records).to_string(
        index=False, float_format=lambda x: f"{x:.3f}"))


def probe_settings(cfg: DictConfig, base_path: str) -> dict:
    """The plain mapping the probe runner takes (it never sees Hydra)."""
    datasets = {}
    for name in cfg.probe.datasets:
        datasets[name] = plain(compose([f"data={name}"]).data) if name != cfg.data.name \
            else plain(cfg.data)
    out = plain(cfg)
    out["base_path"] = base_path
    out["probe"]["datasets"] = datasets
    out["probes"] = list(out["probes"].values())
    return out


def resolve_base(cfg: DictConfig, timings: dict[str, float]) -> str:
    """The base model's directory: `base.path` when given (a folder, or a hub id resolved
    through the hub cache: hub.py), else the tiny model we build."""
    if cfg.base.get("path"):
        return hub.resolve(cfg.base.path, "base.path")
    return build_base(cfg, timings)


def series_checkpoints(cfg: DictConfig) -> str | list[tuple[int, str]]:
    """``series``: a folder (or a hub id of a repo holding checkpoint folders) as a local
    folder, or a list of hub ids / folders as ``[(step, local folder)]``, each step the last
    number in its revision or name. Raises ``UserError`` for a list entry without a step or
    two entries with one step."""
    if not OmegaConf.is_list(cfg.series):
        return hub.resolve(cfg.series, "series")
    out = []
    for spec in cfg.series:
        step = hub.step_of(spec)
        if step is None:
            raise UserError(f"series entry {spec}: no step number in its revision or name "
                            "(e.g. org/run@step-150)")
        out.append((step, hub.resolve(spec, "series")))
    steps = [s for s, _ in out]
    if len(set(steps)) != len(steps):
        raise UserError(f"series: several entries claim one step ({sorted(steps)})")
    return sorted(out)


def run_probe(cfg: DictConfig, timings: dict[str, float]) -> dict:
    from rlboundary.probing.inputs import find_checkpoints
    from rlboundary.probing.runner import probe_checkpoint, probe_series

    base = resolve_base(cfg, timings)
    settings = probe_settings(cfg, base)
    with phase(f"probe (n={cfg.n}) -> {cfg.run_dir}", timings):
        if cfg.series:
            series = series_checkpoints(cfg)
            results = probe_series(series, settings)
            found = find_checkpoints(series) if isinstance(series, str) else series
            step, model = found[-1]
        else:
            model = hub.resolve(cfg.model, "model") if cfg.model else base
            step = cfg.step if cfg.step is not None else (
                0 if model == base else (hub.step_of(cfg.model) or 1))
            results = {step: probe_checkpoint(model, step, settings)}
    if cfg.control == "temperature":
        if step == 0:
            raise UserError("control=temperature compares a checkpoint with the base: give "
                            "model=PATH or series=DIR")
        from rlboundary.probing.temperature_control import run_control

        with phase(f"temperature control of step {step}", timings):
            run_control(model, step, settings)
    return results


def print_summary(results: dict) -> None:
    """One console line per (step, dataset): pass@1/16/256, delta_se, ppl_base, entropy."""
    for step, per_data in sorted(results.items()):
        for name, m in per_data.items():
            ks = [k for k in (1, 16, 256) if f"pass@{k}" in m]
            cells = "  ".join(f"pass@{k} {m[f'pass@{k}']:.3f}" for k in ks)
            extra = "".join(f"  {key} {m[key]:.3f}" for key in ("delta_se", "ppl_base",
                                                                  "entropy") if key in m)
            print(f"  step {step:>6} {name}: {cells}{extra}")


def write_report(cfg: DictConfig, run_dir: str, timings: dict[str, float]) -> None:
    from rlboundary.report import write_report as _write

    with phase("report", timings):
        path = _write(run_dir)
    print(f"  report: {path}")
    if cfg.report.wandb:
        from rlboundary.report.wandb_log import log_run_dir

        log_run_dir(run_dir, project=cfg.report.wandb_project)


def run_train(cfg: DictConfig, timings: dict[str, float]) -> dict:
    """Build (or find) the base model, then train it with the configured engine, probing
    every checkpoint unless `trainer.probe=off`."""
    if cfg.engine == "verl":
        return run_train_verl(cfg, timings)
    if cfg.trainer.probe == "after":
        raise UserError("trainer.probe=after is engine=verl's (probe once the GPUs are free); "
                        "the local engine probes async, sync or off")
    from rlboundary.trainer.local.engine import train

    base = resolve_base(cfg, timings)
    paths = {"policy_path": base}
    if cfg.distill.enable:
        paths["teacher_path"] = resolve_teacher(cfg, timings)
    settings = probe_settings(cfg, base) if cfg.trainer.probe != "off" else None
    with phase(f"train {cfg.algorithm.name} for {cfg.trainer.total_training_steps} steps "
               f"-> {cfg.run_dir}", timings):
        return train({**plain(cfg), **paths}, settings)


def resolve_teacher(cfg: DictConfig, timings: dict[str, float]) -> str:
    """``algorithm=distill``'s teacher: ``distill.teacher`` (a folder or hub id), else the tiny
    teacher built (or reused) from ``distill.teacher_base``."""
    if cfg.distill.teacher:
        return hub.resolve(cfg.distill.teacher, "distill.teacher")
    from rlboundary.trainer.base_model import build_base as _build

    with phase("build tiny teacher model", timings):
        path = _build(plain(cfg.distill.teacher_base), cfg.cache_dir, force=cfg.force,
                      progress=cfg.progress)
    return path


def run_train_verl(cfg: DictConfig, timings: dict[str, float]) -> dict:
    """engine=verl: the base is ``base.path`` (a local directory or a hub id's cached snapshot:
    the probes hash and load it as step 0; a dry run leaves it unresolved) or the tiny model we
    build; verl trains, our checkpoint callback probes."""
    from rlboundary.trainer.verl.launch import train

    if cfg.distill.enable:
        return run_distill_verl(cfg, timings)
    if not cfg.base.path:
        base = build_base(cfg, timings)
    elif cfg.dry_run or not hub.is_hub_id(cfg.base.path):
        base = cfg.base.path  # a dry run checks without the weights (trainer/verl/stand_in.py);
        #                       a missing folder is launch's one line (download, or dry_run)
    else:
        base = hub.resolve(cfg.base.path, "base.path")
    settings = probe_settings(cfg, base) if cfg.trainer.probe != "off" else None
    what = "check" if cfg.dry_run else "train"
    with phase(f"verl: {what} {cfg.algorithm.name} for {cfg.trainer.total_training_steps} "
               f"steps -> {cfg.run_dir}", timings):
        return train(plain(cfg), base, settings)


def run_distill_verl(cfg: DictConfig, timings: dict[str, float]) -> dict:
    """engine=verl algorithm=distill: verl's SFT trainer. Only ``dry_run=true`` is built (the
    cluster run is not: see trainer/verl/sft.py)."""
    from rlboundary.trainer.verl.sft import dry_run

    if not cfg.dry_run:
        raise UserError("engine=verl algorithm=distill: only dry_run=true is built so far (verl's "
                        "SFT config composed and validated); train with engine=local")
    base = cfg.base.path or build_base(cfg, timings)
    with phase(f"verl SFT: check distill for {cfg.trainer.total_training_steps} steps", timings):
        return dry_run(plain(cfg), base)
