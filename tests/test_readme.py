"""The README's commands run as written on a fresh checkout (with small settings appended, so
they take seconds): a newcomer's first steps must not fail."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

# Appended after the README's own settings (Hydra: the last value wins), with the session's
# test base settings for the commands that build or use a base.
SMALL = {
    "base": ["progress=false", "eval_samples=2"],
    "train": ["progress=false", "data.train_batch_size=4", "rollout.n=4", "n=8", "probe.limit=8",
              "trainer.logger=[console]", "ray.num_cpus=2", "trainer.total_training_steps=2",
              "trainer.save_freq=2"],
    "report": [],
    "probe": ["progress=false", "n=8", "probe.limit=8"],
    "data": [],
}
USES_BASE = {"base", "train", "probe"}


def readme_commands() -> list[str]:
    """Every `rlboundary ...` line inside a ```bash block of README.md, in order."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    return [ln for ln in lines if ln.startswith("rlboundary ")]


def test_readme_has_commands():
    cmds = readme_commands()
    assert {c.split()[1] for c in cmds} >= {"data", "base", "train", "probe"}


def test_readme_commands_run_as_written(tmp_path, shared_dir, trained_base, base_overrides):
    work = tmp_path / "work"
    work.mkdir()
    # A fresh cache holding only the session's test base, which `base build` then reuses.
    (tmp_path / "cache" / "base").mkdir(parents=True)
    (tmp_path / "cache" / "base" / os.path.basename(trained_base)).symlink_to(trained_base)
    (tmp_path / "shared").symlink_to(shared_dir.parent)  # `../shared/data/...` as in a checkout
    (work / "recipes").symlink_to(ROOT / "recipes")  # commands run from the repository root
    bindir = os.path.dirname(sys.executable)  # what `source .venv/bin/activate` puts first
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
           "RLBOUNDARY_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    for line in readme_commands():
        args = shlex.split(line)
        if any("shared/data" in a for a in args) and not shared_dir.exists():
            continue  # the real data is absent on this machine: skip that one line
        extra = SMALL[args[1]] + (base_overrides if args[1] in USES_BASE else [])
        proc = subprocess.run(args + extra, cwd=work, env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        assert proc.returncode == 0, f"`{line}` failed:\n{proc.stderr[-3000:]}"


def test_readme_figures_come_from_the_figures_file():
    """Every number in the README's marked regions is what bench/readme_figures.py renders from
    docs/figures.json (a hand edit of a figure, or a stale region, fails here)."""
    spec = importlib.util.spec_from_file_location("readme_figures",
                                                  ROOT / "bench" / "readme_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    figures = json.loads((ROOT / "docs" / "figures.json").read_text())
    assert set(figures) >= {"demo", "bench", "train", "machine"}
    text = (ROOT / "README.md").read_text()
    assert text.count("<!-- figures:") == len(mod.RENDER)
    assert mod.rewrite(text, figures) == text
