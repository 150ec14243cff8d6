"""Measure every figure the README quotes and rewrite those figures in README.md.

Nothing in the README's numbers is typed by hand: this script runs the demo (in a fresh cache, so
the base build is timed too) and the benches, keeps what they measured in `docs/figures.json`
(with the machine, the date and the versions), and renders the README's marked regions
(`<!-- figures:NAME -->` ... `<!-- /figures:NAME -->`) from that file. Parts not rerun keep their
stored figures, so `--parts bench` refreshes the bench table alone.

Run from the repository root, on the machine the README describes (nothing else running):
`python bench/readme_figures.py [--parts demo,seeds,bench,train] [--render-only]`. The demo
takes about 8 minutes on 2 cores; the seeds part trains two sweeps (about 1.5 hours), or reads
finished ones: `--parts seeds --sweeps runs/sweeps/grpo_seeds,runs/sweeps/six_algorithms_seeds`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlboundary.fileio import write_text

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures.json"
README = ROOT / "README.md"
PARTS = ("demo", "seeds", "bench", "train")
#: the seed sweeps `--parts seeds` runs (each: recipe, the sweep folder's name)
SEED_SWEEPS = (("recipes/tiny/grpo_seeds.yaml", "grpo_seeds"),
               ("recipes/tiny/six_algorithms_seeds.yaml", "six_algorithms_seeds"))


def machine() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "date": datetime.date.today().isoformat()}


#: The vLLM lane's interpreter (Makefile: vllm-setup); the vLLM comparison runs there.
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


def run_json(cmd: list[str], python: str = sys.executable) -> dict:
    """Run one bench with `--json FILE` appended and return what it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        subprocess.run([python, *cmd, "--json", out], cwd=ROOT, check=True)
        return json.loads(Path(out).read_text())


def measure_demo(workdir: str | None = None) -> dict:
    """`rlboundary demo` in a fresh cache: its wall time, then `demo_figures` of its run.
    ``workdir``: an empty folder that keeps the run and the cache (default: a temporary one)."""
    if workdir and os.path.exists(workdir) and os.listdir(workdir):
        raise SystemExit(f"--workdir {workdir} is not empty: the demo would reuse what is there")
    with (contextlib.nullcontext(workdir) if workdir
          else tempfile.TemporaryDirectory(prefix="rlb-figures-")) as tmp:
        run_dir, cache = os.path.join(tmp, "run"), os.path.join(tmp, "cache")
        env = {**os.environ, "RLBOUNDARY_CACHE": cache}
        t0 = time.perf_counter()
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "rlboundary"), "demo",
                        f"run_dir={run_dir}"], cwd=ROOT, env=env, check=True)
        wall = time.perf_counter() - t0
        shutil.copy(Path(run_dir, "report", "arithmetic_pass_at_k.png"),
                    ROOT / "docs" / "demo_pass_at_k.png")
        val_dir = os.path.join(tmp, "validation")
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "rlboundary"), "probe",
                        "data.probe_split=validation", f"run_dir={val_dir}", "progress=false"],
                       cwd=ROOT, env=env, check=True)
        return {"wall_s": wall, **demo_figures(run_dir, cache), **base_profile(val_dir)}


def base_profile(run_dir: str) -> dict:
    """The base model's pass@1 and pass@256 on the validation split (the probe of ``run_dir``)."""
    from rlboundary import probes
    from rlboundary.report.load import load_run

    t = load_run(run_dir).table("arithmetic", 0)
    n, c = t["n"].to_numpy(int), t["c"].to_numpy(int)
    return {"val_problems": len(t), "val_pass1": float(probes.pass_at_k_curve(n, c, 1)[0]),
            "val_pass256": float(probes.pass_at_k_curve(n, c, 256)[0])}


def demo_figures(run_dir: str, cache: str) -> dict:
    """The figures the README quotes from one demo run and the base build in `cache`."""
    from rlboundary.report.load import load_run
    from rlboundary.report.study import study_table, versus_base

    data = load_run(run_dir)
    steps = data.steps("arithmetic")
    k = int(min(data.table("arithmetic", s)["n"].min() for s in steps))  # as study_table
    base_t = data.table("arithmetic", 0)
    b = versus_base(base_t, base_t, k)
    v = versus_base(base_t, data.table("arithmetic", steps[-1]), k)
    probes = [json.loads(x) for x in Path(run_dir, "metrics.jsonl").read_text().splitlines()]
    probes = {r["step"]: r for r in probes if r.get("kind") != "train"}
    (build,) = Path(cache, "base").glob("*/build_info.json")
    info = json.loads(build.read_text())
    return {"base_build_s": info["seconds"], "params": info["params"],
            "table": study_table(run_dir, "arithmetic").to_string(index=False), "k": k,
            "last_step": int(steps[-1]),
            **{key: [b[m], v[m]] for key, m in (("pass1", "pass@1"), ("passk", f"pass@{k}"),
                                                 ("ppl", "ppl_base"), ("entropy", "entropy"),
                                                 ("ppl_median", "ppl_base_median"))},
            "problems": len(base_t),
            "lost": v["base_only"], "gained": v["policy_only"],
            "crossover_k": None if math.isnan(v["crossover_k"]) else v["crossover_k"],
            "base_pass16": probes[0]["pass@16"], "base_valid1": probes[0]["valid_pass@1"]}


def measure_seeds(sweep_dirs: list[str] | None = None) -> dict:
    """Each seed sweep of :data:`SEED_SWEEPS`, then `report --compare` on it: its across-seed
    rows and the summed wall time of its jobs. ``sweep_dirs``: finished sweeps of those
    recipes (folders named after them) to read instead of training them again here (the
    second sweep alone takes about an hour on 2 cores)."""
    import pandas as pd

    out = {}
    exe = os.path.join(os.path.dirname(sys.executable), "rlboundary")
    given = {Path(d).name: d for d in sweep_dirs or []}
    with tempfile.TemporaryDirectory(prefix="rlb-seeds-") as tmp:
        for recipe, name in SEED_SWEEPS:
            if sweep_dirs is not None and name not in given:
                continue
            sweep = given.get(name) or os.path.join(tmp, name)
            if name not in given:
                subprocess.run([exe, "train", "-m", "--recipe", recipe,
                                f"hydra.sweep.dir={sweep}", "trainer.logger=[console]"],
                               cwd=ROOT, check=True)
            subprocess.run([exe, "report", "--compare", sweep], cwd=ROOT, check=True)
            rows = pd.read_csv(Path(sweep, "compare", "arithmetic_seeds.csv"))
            jobs = [json.loads(p.read_text()) for p in Path(sweep).glob("*/job.json")]
            out[name] = {"wall_s": sum(j.get("seconds", 0.0) for j in jobs),
                         "rows": rows.to_dict("records")}
    return out


def measure_bench() -> dict:
    out = {"passk": run_json(["bench/bench_passk.py"]),
           "sampler": run_json(["bench/bench_sampler.py"]),
           "sampler_fixed": run_json(["bench/bench_sampler.py", "--eos", "off", "--prompts", "16",
                                      "--n", "64", "--max-new-tokens", "64"])}
    if VLLM_PYTHON.exists():  # make vllm-setup
        out["sampler_vllm"] = run_json(["bench/bench_sampler.py", "--against", "vllm"],
                                       str(VLLM_PYTHON))
    else:
        print(f"[readme_figures] {VLLM_PYTHON} is absent (make vllm-setup): the vLLM row "
              "keeps its stored figures")
    return out


def measure_train() -> dict:
    return run_json(["bench/bench_train.py"])


def render_demo(f: dict, m: dict) -> str:
    d = f["demo"]
    (p0, p1), (k0, k1), (q0, q1) = d["pass1"], d["passk"], d["ppl_median"]
    shape = ("The study's shape in miniature" if p1 > p0 and k1 < k0 else
             "Not the study's shape this time")
    cross = (f"the curves cross at k={int(d['crossover_k'])}" if d["crossover_k"] else
             f"the curves do not cross up to k={d['k']}")
    return f"""`make demo` builds the tiny base, trains it with GRPO for {d['last_step']} steps (32 prompts x 8 samples per
step), probes the base and every checkpoint with {d['k']} samples on each of {d['problems']} held-out problems,
writes the report and prints this table. Measured by `bench/readme_figures.py` on {m['date']}:
{m['cpus']} CPU cores, torch {m['torch']}, Python {m['python']}; the demo took {d['wall_s'] / 60:.1f} min after the
set-up (`diff` = checkpoint minus base, paired over the same problems; 95% Student-t intervals
over problems):

```
{d['table']}
```

{shape}: RL moves pass@1 by {p1 - p0:+.3f} and pass@{d['k']} by {k1 - k0:+.3f}
({d['lost']} problems the base model solves at least once in {d['k']} tries are lost, {d['gained']} gained); the
median per-response perplexity of its samples under the base model is {q1:.3f} against {q0:.3f} for
the base's own samples (the study's PPL_base; the mean is pulled up by a few degenerate
responses), and its entropy goes from {d['entropy'][0]:.3f} to {d['entropy'][1]:.3f} nats per token; {cross}.

Your numbers will differ a little: the tiny base is built on your CPU, and another CPU's float
path (AVX2, AVX-512 or scalar kernels) gives slightly different weights and a different
trajectory. The conclusion should not differ; the spread over 5 training seeds below, and the
same demo on other float paths (`ATEN_CPU_CAPABILITY=avx2` and `=default`), show by how much
the numbers move.

![pass@k of the base model and the GRPO checkpoints](docs/demo_pass_at_k.png)"""


def render_base(f: dict, m: dict) -> str:
    d = f["demo"]
    return (f"Measured by `bench/readme_figures.py` ({m['cpus']} cores, {m['date']}): "
            f"{d['params']:,} parameters built in {d['base_build_s']:.0f} s; on the "
            f"{d['problems']} test chains at T=1, pass@1 {d['pass1'][0]:.3f}, pass@16 "
            f"{d['base_pass16']:.3f}, pass@{d['k']} {d['passk'][0]:.3f}, whole-trace-valid "
            f"pass@1 {d['base_valid1']:.3f} (on the {d['val_problems']} validation chains: "
            f"pass@1 {d['val_pass1']:.3f}, pass@256 {d['val_pass256']:.3f}): broad but "
            "unreliable support, the shape the study's base models have (its Qwen2.5-7B on "
            "Omni-MATH-Rule: pass@1 0.102, pass@256 0.691).")


def render_bench(f: dict, m: dict) -> str:
    b = f["bench"]
    pk = b["passk"]["seconds"]["pass_at_k (P, K)"]
    rows = [f"`make bench` prints comparison tables. Measured by `bench/readme_figures.py` on "
            f"{m['date']} ({m['cpus']} CPU cores, torch {m['torch']}):", "",
            "| bench | workload | result |", "| --- | --- | --- |",
            f"| `bench/bench_passk.py` | pass@k, 821 problems x 256 samples, every k = 1..256 | "
            f"{pk:.4f} s |"]
    for key, label in (("sampler", "tiny base, 8 prompts x 256 samples, EOS, <= 160 tokens "
                        "(a probe)"), ("sampler_fixed", "tiny base, 16 x 64 samples, exactly 64 "
                                       "tokens each (`--eos off`)")):
        per = b[key]["samples_per_s"]
        cells = []
        for threads, r in per.items():
            ours, ref = r["rlboundary hf"], r["hf.generate"]
            cells.append(f"{threads} thread{'s' * (threads != '1')}: {ours:.0f} vs {ref:.0f} "
                         f"samples/s, {ours / ref:.1f}x")
        rows.append(f"| `bench/bench_sampler.py` | {label} | ours vs `generate`: "
                    f"{'; '.join(cells)} |")
    if "sampler_vllm" in b:
        v = b["sampler_vllm"]
        cells = []
        for threads, r in v["samples_per_s"].items():
            (ref_name, ref), ours = next((k, x) for k, x in r.items() if k.startswith("vllm")), \
                r["rlboundary hf"]
            cells.append(f"{threads} thread{'s' * (threads != '1')}: {ours:.0f} vs {ref:.0f} "
                         f"samples/s, {ours / ref:.1f}x")
        rows.append(f"| `bench/bench_sampler.py --against vllm` | tiny base, 8 prompts x 256 "
                    f"samples, EOS, <= 160 tokens, in the lane's `.venv-vllm` | ours vs "
                    f"{ref_name.replace('vllm', 'vLLM')} ({v.get('vllm', '?')}): "
                    f"{'; '.join(cells)} |")
    return "\n".join(rows)


def render_train(f: dict, m: dict) -> str:
    t = f["train"]
    rows = [f"Seconds per step of the local engine, 32 prompts x 8 samples, probes off (median of "
            f"steps 3..12, `bench/bench_train.py`, {m['cpus']} CPU cores, {m['date']}):", "",
            "| algorithm | step | generation | old log-probs | values | actor update | critic "
            "update |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for algo, r in t.items():
        p = r["phases"]
        gen = p["gen"] + p["gen_baseline"]
        rows.append(f"| `{algo}` | {r['step']:.2f} | {gen:.2f} | {p['old_log_prob']:.2f} | "
                    f"{p['values']:.2f} | {p['update_actor']:.2f} | {p['update_critic']:.2f} |")
    return "\n".join(rows)


def render_seeds(f: dict, m: dict) -> str:
    rows = [f"Measured by `bench/readme_figures.py` on {m['date']} ({m['cpus']} CPU cores): "
            "each run probed at its last step (200) on the 600 test problems; mean over seeds with a 95% "
            "Student-t interval across seeds; the last column counts the seeds whose own "
            "paired interval over problems lies below zero.", "",
            "| recipe | runs | seeds | diff@1 | diff@256 | diff@256 per seed | seeds with "
            "diff@256 CI < 0 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, sweep in f["seeds"].items():
        for r in sweep["rows"]:
            rows.append(
                f"| `{name}` ({sweep['wall_s'] / 60:.0f} min) | {r['group']} | {r['seeds']} | "
                f"{r['diff@1']:+.3f} [{r['diff@1_lo']:+.3f}, {r['diff@1_hi']:+.3f}] | "
                f"{r['diff@256']:+.3f} [{r['diff@256_lo']:+.3f}, {r['diff@256_hi']:+.3f}] | "
                f"{r['diff@256_min']:+.3f} .. {r['diff@256_max']:+.3f} | "
                f"{r['diff@256_below']} of {r['seeds']} |")
    return "\n".join(rows)


RENDER = {"demo": render_demo, "seeds": render_seeds, "base": render_base, "bench": render_bench, "train": render_train}


def rewrite(text: str, figures: dict) -> str:
    """Replace each marked region of `text` whose figures are stored; raise if one is missing."""
    for name, fn in RENDER.items():
        part = "demo" if name == "base" else name
        if part not in figures:
            continue
        pat = re.compile(rf"(<!-- figures:{name} -->\n).*?(\n<!-- /figures:{name} -->)", re.DOTALL)
        if not pat.search(text):
            raise ValueError(f"README.md has no region <!-- figures:{name} -->")
        body = fn(figures, figures["machine"][part])
        text = pat.sub(lambda mt, body=body: mt.group(1) + body + mt.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    ap.add_argument("--render-only", action="store_true", help="rewrite from docs/figures.json")
    ap.add_argument("--sweeps", help="seeds part: comma list of finished sweep folders to read "
                    "instead of training (e.g. runs/sweeps/grpo_seeds)")
    ap.add_argument("--workdir", help="demo part: keep its run and cache in this empty folder")
    args = ap.parse_args(argv)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {"machine": {}}
    if not args.render_only:
        for part in args.parts.split(","):
            if part not in PARTS:
                raise SystemExit(f"unknown part {part!r}; choose from {PARTS}")
            if part == "seeds" and args.sweeps:  # add to (or refresh) the stored sweeps
                figures[part] = {**figures.get(part, {}),
                                 **measure_seeds(args.sweeps.split(","))}
            elif part == "demo":
                figures[part] = measure_demo(args.workdir)
            else:
                figures[part] = globals()[f"measure_{part}"]()
            figures["machine"][part] = machine()
            write_text(str(FIGURES), json.dumps(figures, indent=1) + "\n")
    write_text(str(README), rewrite(README.read_text(), figures))
    print(f"README.md rewritten from {FIGURES.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
