"""rlboundary's command line: the one reader of Hydra configs.

    rlboundary data prepare NAME [--source PATH] [--out DIR] [key=value ...]
    rlboundary base build [key=value ...]
    rlboundary demo [key=value ...]
    rlboundary train [--recipe recipes/tiny/grpo.yaml] [algorithm=NAME] [key=value ...]
    rlboundary train -m [--recipe recipes/tiny/six_algorithms.yaml] [algorithm=ppo,grpo ...]
    rlboundary train engine=verl --recipe recipes/omni_math/grpo.yaml [dry_run=true] [verl.KEY=V]
    rlboundary probe [model=PATH] [base=PATH] [series=DIR] [data=NAME] [n=256] [key=value ...]
    rlboundary probe -m sampling.temperature=0.6,1.0,1.2 [model=PATH | series=DIR] [...]
    rlboundary report RUN_DIR | rlboundary report --compare DIR [DIR ...]
    rlboundary verify PRED GOLD | rlboundary verify --text FILE GOLD   (no overrides)

Everything after the sub-command is a Hydra override of `rlboundary/conf/config.yaml`
(e.g. `base.pretrain.steps=300 n=64`); `base=PATH` is short for `base.path=PATH`. Each phase prints how long it took.
This module parses the command line and dispatches; the work is in commands.py (shared with the
sweep jobs of sweep.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from omegaconf import OmegaConf

from rlboundary.cli_args import expand_shorthands, recipe_keys, recipe_overrides, verl_keys
from rlboundary.cli_help import settings_help
from rlboundary.commands import (
    build_base,
    compose,
    compose_hydra,
    heldout_accuracy,
    phase,
    plain,
    print_summary,
    run_probe,
    run_train,
    settle,
    without_hydra,
    write_report,
)
from rlboundary.errors import Interrupted, UserError

#: Keys of the `data` node that set training, not the dataset: left out of manifest.json.
TRAINING_DATA_KEYS = ("train_batch_size", "chat_template")


def cmd_data_prepare(args: argparse.Namespace, overrides: list[str]) -> None:
    from rlboundary.tasks import TASKS
    from rlboundary.tasks.export import write_dataset

    extra = [f"data={args.name}"] + ([f"data.source={args.source}"] if args.source else [])
    cfg = compose(extra + overrides)
    data = plain(cfg.data)
    task = TASKS.get(data.pop("name"))
    out = args.out or f"data/{task.name}"
    timings: dict[str, float] = {}
    with phase(f"prepare {task.name}", timings):
        records = task.load(cache_dir=cfg.cache_dir, **data)
        source = {k: v for k, v in data.items() if k not in TRAINING_DATA_KEYS}
        man = write_dataset(task, records, out, {"name": task.name, **source})
    for split, info in man["splits"].items():
        print(f"  {split}: {info['count']} problems, ids sha256 {info['ids_sha256']}")
    print(f"  wrote {out}/{{{','.join(man['splits'])}}}.parquet and {out}/manifest.json")


def cmd_base_build(args: argparse.Namespace, overrides: list[str]) -> None:
    cfg = compose(overrides)
    timings: dict[str, float] = {}
    path = build_base(cfg, timings)
    heldout_accuracy(cfg, path, timings)


def cmd_probe(args: argparse.Namespace, overrides: list[str]) -> int | None:
    if args.multirun:
        from rlboundary import sweep

        return sweep.run_multirun(overrides, exclude_keys=recipe_keys(args.recipe),
                                  command="probe")
    cfg = compose(overrides)
    timings: dict[str, float] = {}
    print_summary(run_probe(cfg, timings))
    write_report(cfg, cfg.run_dir, timings)
    print("phase timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


def cmd_report(args: argparse.Namespace, overrides: list[str]) -> None:
    cfg = compose(overrides)
    if not args.compare:
        if len(args.run_dir) > 1:
            raise UserError("report takes one RUN_DIR; --compare puts several on one page")
        write_report(cfg, args.run_dir[0], {})
        return
    from rlboundary.report.compare import log_compare_wandb, write_compare

    timings: dict[str, float] = {}
    with phase(f"compare {' '.join(args.run_dir)}", timings):
        path = write_compare(args.run_dir)
    print(f"  comparison: {path}")
    seeds = path.parent / "seeds.txt"
    if seeds.exists():
        print("across training seeds (mean [95% t-interval over seeds]):\n"
              + seeds.read_text().rstrip())
    if cfg.report.wandb:
        print(f"  W&B: {log_compare_wandb(args.run_dir, project=cfg.report.wandb_project)}")


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> int | None:
    from rlboundary import sweep

    if args.multirun:
        return sweep.run_multirun(overrides, exclude_keys=recipe_keys(args.recipe))
    cfg = compose_hydra(overrides)
    if cfg.hydra.sweeper.get("params"):
        raise UserError(f"{args.recipe} is a sweep (hydra.sweeper.params): run it with "
                        "`rlboundary train -m --recipe ...`")
    cfg = settle(without_hydra(cfg))
    timings: dict[str, float] = {}
    result = run_train(cfg, timings)
    if "verl_config" in result:
        return None
    print_summary(result["probes"])
    if result["probes"]:
        write_report(cfg, cfg.run_dir, timings)
    print("phase timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


def cmd_demo(args: argparse.Namespace, overrides: list[str]) -> None:
    """The embedded study: tiny base, GRPO on arithmetic, every checkpoint probed, a report and
    the study's table (pass@1 up, pass@256 down, with paired CIs of the differences)."""
    from rlboundary.report.study import study_table

    cfg = compose(overrides)
    timings: dict[str, float] = {}
    run_train(cfg, timings)
    write_report(cfg, cfg.run_dir, timings)
    for name in cfg.probe.datasets:
        print(f"\n{name}: {cfg.n} samples per held-out problem (T={cfg.sampling.temperature}); "
              "[95% CI over problems], diff = checkpoint - base, paired over problems")
        print(study_table(cfg.run_dir, name).to_string(index=False))
    print("\nphase timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


def cmd_verify(args: argparse.Namespace, overrides: list[str]) -> None:
    from rlboundary.tasks.verify_cli import run

    raise SystemExit(run(args.answers, text=args.text, timeout=args.timeout))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlboundary", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--recipe", help="a recipe yaml (e.g. recipes/tiny_probe.yaml)")
    sub = p.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="dataset preparation").add_subparsers(dest="action",
                                                                            required=True)
    prep = data.add_parser("prepare", parents=[common],
                           help="write verl-ready parquet and a manifest")
    prep.add_argument("name", help="task name: omni_math_rule, math500, arithmetic")
    prep.add_argument("--source", help="local jsonl path (default: download)")
    prep.add_argument("--out", help="output directory (default: data/NAME)")
    prep.set_defaults(func=cmd_data_prepare)
    base = sub.add_parser("base", help="the tiny base model").add_subparsers(dest="action",
                                                                            required=True)
    base.add_parser("build", parents=[common], help="build (or reuse) the tiny base model").set_defaults(
        func=cmd_base_build)
    sub.add_parser("demo", parents=[common], help="the embedded study on this machine").set_defaults(func=cmd_demo)
    sub.add_parser("train", parents=[common], help="RL training (engine=local|verl), probing "
                   "every checkpoint; -m runs a Hydra sweep").set_defaults(func=cmd_train)
    sub.add_parser("probe", parents=[common], help="probe a checkpoint (model=PATH) or a series "
                   "(series=DIR); -m runs a Hydra sweep of probes").set_defaults(func=cmd_probe)
    rep = sub.add_parser("report", parents=[common], help="write RUN_DIR/report/index.html; "
                         "--compare DIR... puts several runs (or a sweep) on one page")
    rep.add_argument("run_dir", nargs="+", metavar="RUN_DIR")
    rep.add_argument("--compare", action="store_true",
                     help="compare the runs in RUN_DIR... (runs, or folders of runs such as a "
                     "sweep's) against their shared base model: FIRST/compare/index.html")
    rep.set_defaults(func=cmd_report)
    ver = sub.add_parser("verify", help="score one answer: verdict, answer, deciding stage")
    ver.add_argument("answers", nargs="+", metavar="PRED GOLD", help="PRED GOLD, or GOLD with --text")
    ver.add_argument("--text", metavar="FILE", help="a whole response (- for stdin) to extract from")
    ver.add_argument("--timeout", type=float, help="seconds for math-verify (default 3)")
    ver.set_defaults(func=cmd_verify, recipe=None)
    for sp in (sub.choices["demo"], sub.choices["train"], sub.choices["probe"],
               sub.choices["report"], base.choices["build"], data.choices["prepare"]):
        sp.epilog = settings_help()
        sp.formatter_class = argparse.RawDescriptionHelpFormatter
    return p


def _user_error(e: BaseException) -> BaseException | None:
    """The user mistake behind ``e`` (unwrapping Ray's task errors), or None for a bug."""
    from rlboundary.tasks.schema import BadRecord

    cause = getattr(e, "cause", None)  # ray.exceptions.RayTaskError
    if cause is not None and cause is not e:
        return _user_error(cause)
    if isinstance(e, (UserError, BadRecord, FileNotFoundError, NotADirectoryError)):
        return e
    return None


def print_config(args: argparse.Namespace, overrides: list[str]) -> None:
    """``--cfg job``: print the composed config (Hydra's flag) and exit."""
    print(OmegaConf.to_yaml(compose(overrides)), end="")


def main(argv: list[str] | None = None) -> int:
    """Run a command. User mistakes (bad settings, missing paths, bad rows, results of other
    settings in run_dir) print one line and return 2; bugs keep their traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    show_cfg = False
    if "--cfg" in argv:
        i = argv.index("--cfg")
        what = argv[i + 1] if i + 1 < len(argv) else ""
        if what != "job":
            print("rlboundary: --cfg takes 'job' (print the composed config)", file=sys.stderr)
            return 2
        del argv[i:i + 2]
        show_cfg = True
    multirun = bool({"-m", "--multirun"} & set(argv))
    argv = [a for a in argv if a not in ("-m", "--multirun")]
    args, overrides = parser().parse_known_args(argv)
    args.multirun = multirun
    if multirun and args.command not in ("train", "probe"):
        print("rlboundary: -m/--multirun (a Hydra sweep) is for `rlboundary train` and "
              "`rlboundary probe`", file=sys.stderr)
        return 2
    bad = [o for o in overrides if "=" not in o]
    if bad:
        print(f"rlboundary: unrecognised arguments {bad}; settings are key=value overrides "
              f"(rlboundary {args.command} --help lists them)", file=sys.stderr)
        return 2
    rc = 0
    previous = None
    if threading.current_thread() is threading.main_thread():  # only it may set handlers
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        full = recipe_overrides(args.recipe) + verl_keys(expand_shorthands(overrides))
        if show_cfg:
            print_config(args, full)
        else:
            rc = args.func(args, full)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM through _terminate
        signum = getattr(e, "signum", signal.SIGINT)
        msg = " ".join(str(e).split()) or f"interrupted ({signal.Signals(signum).name})"
        print(f"rlboundary: {msg}", file=sys.stderr)
        return 128 + int(signum)
    except Exception as e:
        user = _user_error(e)
        if user is None or os.environ.get("RLBOUNDARY_TRACEBACK"):
            raise
        msg = " ".join(str(user).split()) or type(user).__name__
        print(f"rlboundary: {msg}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(rc or 0)


def _terminate(signum, frame) -> None:
    """SIGTERM (what SLURM and `kill` send): unwind like Ctrl-C, so actors stop and the run
    ends with one line and exit 143."""
    raise Interrupted("", signum)


if __name__ == "__main__":
    sys.exit(main())
