"""`rlboundary train -m` and `rlboundary probe -m`: sweeps of training or probe jobs through
Hydra's own multirun machinery (e.g. `rlboundary probe -m sampling.temperature=0.6,1.0,1.2
model=CKPT`: one probe run per temperature, then `report --compare` on one page).

Hydra composes every job (comma lists on the command line, or `hydra.sweeper.params` in a
recipe), its sweeper orders them and the launcher picked with `hydra/launcher=...` runs them:
Hydra's basic launcher one after another in this process, or a plugin such as submitit on SLURM
(`recipes/launcher/slurm.yaml`). This module is the CLI's other half and reads Hydra like it.

Each job trains (or probes) into its own run directory, `hydra.sweep.dir/hydra.sweep.subdir`
(the sweep's folder, then the job's overrides), and writes `job.json` there: its overrides, how
it ended (`done`, `failed` with the error, `skipped` when already done) and its wall time. A job that
fails is recorded and the sweep goes on (Hydra's sweeper would stop at the first failure); the
sweep's record `SWEEP_DIR/sweep.json` and a table of every job follow at the end, and the exit
code is 1 when a job failed. Re-running the same sweep skips the jobs already done and resumes
the rest from their newest checkpoint (`resume=auto`); a probe job runs again and reuses every
result already stored with its settings. A probe sweep writes under `runs/sweeps/<data>_probe`
unless the recipe or command line sets `hydra.sweep.dir`.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rlboundary.commands import (
    compose_hydra,
    print_summary,
    run_probe,
    run_train,
    settle,
    write_report,
)
from rlboundary.errors import UserError
from rlboundary.fileio import write_text

JOB_RECORD = "job.json"
SWEEP_RECORD = "sweep.json"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def train_job(cfg: DictConfig) -> dict[str, Any]:
    """One training job of a sweep (called by Hydra's launcher); see :func:`run_job`. A job
    done before (same overrides) is skipped unless ``resume=disable``."""
    return run_job(cfg, _train, skip_done=cfg.resume != "disable")


def probe_job(cfg: DictConfig) -> dict[str, Any]:
    """One probe job of a sweep (``rlboundary probe -m``); see :func:`run_job`. Never skipped:
    the probe itself reuses every result already stored with the same settings."""
    return run_job(cfg, _probe, skip_done=False)


def _train(cfg: DictConfig, run_dir: Path, sweep: str, name: str,
           timings: dict[str, float]) -> str:
    with open_dict(cfg):
        cfg.trainer.group = cfg.trainer.group or sweep
        cfg.trainer.experiment_name = f"{sweep}/{name}"
    settle(cfg)
    result = run_train(cfg, timings)
    if result.get("probes"):
        write_report(cfg, str(run_dir), timings)
    # engine=verl dry_run=true only checks the job's config: not done, so a real run reruns it
    return "checked" if "verl_config" in result else "done"


def _probe(cfg: DictConfig, run_dir: Path, sweep: str, name: str,
           timings: dict[str, float]) -> str:
    settle(cfg)
    print_summary(run_probe(cfg, timings))
    write_report(cfg, str(run_dir), timings)
    return "done"


def run_job(cfg: DictConfig, work, skip_done: bool) -> dict[str, Any]:
    """One job of a sweep: ``work(cfg, run_dir, sweep name, job name, timings)`` in the job's
    output directory, returning its status.

    Never raises for a failed job: the failure is written to ``job.json`` (with the traceback
    in ``error.txt``) and returned, so the launcher goes on with the next job.
    """
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep = Path(hc.sweep.dir).name
    overrides = list(hc.overrides.task)
    record = {"job": hc.job.num, "name": hc.job.override_dirname or sweep,
              "overrides": overrides, "run_dir": str(run_dir)}
    old = _read(run_dir / JOB_RECORD) or {}
    if skip_done and old.get("status") in ("done", "skipped") \
            and old.get("overrides") == overrides:
        print(f"[rlboundary] job {record['name']}: done before, skipped", flush=True)
        return _write_job(run_dir, {**old, "status": "skipped", "job": hc.job.num})
    t0 = time.perf_counter()
    try:
        timings: dict[str, float] = {}
        record.update(status=work(cfg, run_dir, sweep, record["name"], timings), error=None)
    except Exception as e:  # noqa: BLE001 - recorded, and the sweep goes on
        write_text(str(run_dir / "error.txt"), traceback.format_exc())
        msg = " ".join(str(e).split()) or type(e).__name__
        record.update(status="failed", error=f"{type(e).__name__}: {msg}"[:500])
        print(f"[rlboundary] job {record['name']} failed: {record['error']}", file=sys.stderr,
              flush=True)
    record["attempts"] = int(old.get("attempts", 0)) + 1
    record["seconds"] = round(time.perf_counter() - t0, 1)
    return _write_job(run_dir, record)


JOBS = {"train": train_job, "probe": probe_job}
#: Where a probe sweep writes when neither the recipe nor the command line says.
PROBE_SWEEP_DIR = "runs/sweeps/${data.name}_probe"


def _write_job(run_dir: Path, record: dict) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(str(run_dir / JOB_RECORD), json.dumps(record, indent=1) + "\n")
    return record


def gather(sweep_dir: str | Path, since: float = 0.0) -> list[dict]:
    """The job records under a sweep's directory written at or after ``since`` (epoch s), in
    job order."""
    paths = [p for p in Path(sweep_dir).rglob(JOB_RECORD) if p.stat().st_mtime >= since]
    jobs = [_read(p) for p in paths]
    return sorted((j for j in jobs if j), key=lambda j: (j.get("job", 0), j["run_dir"]))


def fixed_keys(overrides: list[str]) -> list[str]:
    """Keys of the overrides that are the same in every job (no comma list, range or choice):
    left out of job directory names, which then show only what the sweep varies."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    return [o.key_or_group for o in parsed  # what Hydra's job naming compares
            if o.key_or_group not in swept and not o.key_or_group.startswith("hydra")]


def run_multirun(overrides: list[str], exclude_keys: list[str], command: str = "train") -> int:
    """Launch the sweep of ``command`` jobs (``train`` or ``probe``) through Hydra; print and
    record how each job ended.

    ``exclude_keys`` are override keys left out of job directory names (the recipe's own
    ``+group``). A probe sweep writes to :data:`PROBE_SWEEP_DIR` unless ``hydra.sweep.dir`` is
    set. Returns 0 when every job is done, 1 when any failed. Raises ``UserError`` when Hydra
    rejects the sweep itself (an unknown key or group).
    """
    import hydra

    cfg = compose_hydra(overrides, multirun=True)
    default_dir = OmegaConf.to_container(cfg.hydra.sweep)["dir"] == "runs/sweeps/${data.name}"
    if command == "probe" and default_dir:
        overrides = [f"hydra.sweep.dir={PROBE_SWEEP_DIR}", *overrides]
        cfg = compose_hydra(overrides, multirun=True)
    sweep_dir = Path(str(cfg.hydra.sweep.dir))
    names = OmegaConf.to_container(cfg.hydra.job.config.override_dirname.exclude_keys)
    names += exclude_keys + fixed_keys(overrides)
    overrides = overrides + ["hydra.job.config.override_dirname.exclude_keys=["
                             + ",".join(dict.fromkeys(names)) + "]",
                             "run_dir=${hydra:runtime.output_dir}"]  # each job its own dir
    started = time.time()
    task = hydra.main(version_base=None, config_path="pkg://rlboundary.conf",
                      config_name="config")(JOBS[command])
    argv = sys.argv
    sys.argv = [f"rlboundary {command}", "--multirun", *overrides]
    try:
        task()
    except SystemExit as e:  # Hydra reports its own errors, then exits
        if e.code:
            raise UserError("the sweep could not be launched (Hydra's message above)") from None
    finally:
        sys.argv = argv
    return report(sweep_dir, started)


def report(sweep_dir: Path, started: float) -> int:
    """Write ``sweep.json`` and print one line per job; 1 if any job failed."""
    jobs = gather(sweep_dir, since=started)
    failed = [j for j in jobs if j.get("status") == "failed"]
    write_text(str(sweep_dir / SWEEP_RECORD), json.dumps(
        {"sweep_dir": str(sweep_dir), "wall_s": round(time.time() - started, 1),
         "jobs": jobs}, indent=1) + "\n")
    print(f"\nsweep {sweep_dir}: {len(jobs)} jobs, {len(failed)} failed "
          f"({time.time() - started:.0f} s)")
    for j in jobs:
        line = f"  {j['status']:<8} {j.get('seconds', 0):>7.1f} s  {j['name']}"
        print(line + (f"  -- {j['error']}" if j.get("error") else ""))
    if failed:
        print("failed jobs resume with the same command (training jobs done are skipped); "
              "tracebacks in each job's error.txt", file=sys.stderr)
    if jobs:
        print(f"compare the runs: rlboundary report --compare {sweep_dir}")
    return 1 if failed else 0
