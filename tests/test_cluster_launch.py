"""The README's cluster commands under `ray job submit --working-dir .`: the checkout is packaged
by Ray's own working-dir code (which honours .gitignore, so data/ and runs/ stay behind), the
job runs from the unpacked copy with the environment Ray gives a job's entrypoint, and the
README's command (as a dry run) passes while the same command with relative paths is refused
with one line."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rlboundary.trainer.verl.launch import RAY_JOB_CONFIG_ENV

ROOT = Path(__file__).resolve().parents[1]


def submit_entrypoints() -> list[list[str]]:
    """The command after `--` of every `ray job submit` in the README's ```sh blocks, with
    continuation lines joined and SLURM's node count set to 2."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.strip().startswith("ray job submit"):
                args = shlex.split(line.replace("$SLURM_JOB_NUM_NODES", "2"))
                out.append(args[args.index("--") + 1:])
    return out


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    """A checkout laid out as the README documents (recipes, data/ and runs/ inside), packaged
    and unpacked the way `ray job submit --working-dir .` does; returns (unpacked folder, the
    job's runtime_env)."""
    from ray._private.runtime_env.packaging import create_package
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

    root = tmp_path_factory.mktemp("cluster")
    checkout = root / "checkout"
    shutil.copytree(ROOT / "recipes", checkout / "recipes")
    shutil.copy(ROOT / ".gitignore", checkout / ".gitignore")
    for name in ("omni_math_rule/train.parquet", "omni_math_rule/test.parquet",
                 "math500/test.parquet"):
        (checkout / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / "data" / name).write_bytes(b"PAR1")
    (checkout / "runs" / "old").mkdir(parents=True)
    package = root / "package.zip"

    def upload(working_dir, excludes=None, is_file=False):
        create_package(working_dir, package, include_gitignore=True, excludes=excludes)

    runtime_env = upload_working_dir_if_needed({"working_dir": str(checkout)},
                                               include_gitignore=True, upload_fn=upload)
    names = zipfile.ZipFile(package).namelist()
    assert any(n.startswith("recipes/omni_math/") for n in names)
    assert not any(n.startswith(("data/", "runs/")) for n in names)   # .gitignore's
    job = root / "job"
    zipfile.ZipFile(package).extractall(job)
    assert runtime_env["working_dir"].startswith("gcs://")
    return job, runtime_env


def _env(runtime_env: dict) -> dict[str, str]:
    """This environment as Ray gives a job's entrypoint, the venv's `rlboundary` first."""
    return {**os.environ, RAY_JOB_CONFIG_ENV: json.dumps({"runtime_env": runtime_env}),
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def _run(args: list[str], job: Path, runtime_env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=job, env=_env(runtime_env), capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_readme_submits_with_shared_absolute_paths():
    commands = submit_entrypoints()
    assert len(commands) == 2   # an existing Ray cluster, and the SLURM script
    for args in commands:
        assert args[:2] == ["rlboundary", "train"]
        assert "cluster.data_dir=/shared/data" in args
        assert any(a.startswith("run_dir=/shared/") for a in args)


def test_the_readme_command_runs_from_rays_copy_of_the_checkout(job_dir):
    job, runtime_env = job_dir
    for args in submit_entrypoints():
        out = _run([*args, "dry_run=true"], job, runtime_env)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "verl validate_config passed (2 node(s) x 8 GPUs" in out.stdout


def test_relative_paths_under_a_job_are_one_clear_line(job_dir):
    """The command as the README wrote it before (data_dir and run_dir relative): refused at
    once, naming both, instead of stopping later on a missing data/ in Ray's copy."""
    job, runtime_env = job_dir
    args = [a for a in submit_entrypoints()[0] if not a.startswith(("cluster.data_dir=",
                                                                     "run_dir="))]
    out = _run([*args, "dry_run=true"], job, runtime_env)
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(err) == 1, out.stderr[-2000:]
    assert "cluster.data_dir=data, run_dir=runs/omni_math/grpo would point into Ray's " \
           "temporary copy" in err[0]
    # outside a job the same relative paths are this machine's own folders: accepted
    env = {k: v for k, v in _env({}).items() if k != RAY_JOB_CONFIG_ENV}
    plain = subprocess.run([*args, "dry_run=true"], cwd=job, capture_output=True, text=True,
                           timeout=300, check=False, env=env)
    assert plain.returncode == 0, plain.stderr[-2000:]
