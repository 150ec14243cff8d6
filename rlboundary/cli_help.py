"""What every command's --help lists after its own arguments: the config groups with their
choices, and the main settings (all of them: `rlboundary COMMAND --cfg job`)."""

from __future__ import annotations

#: The settings --help lists (all of them: `rlboundary COMMAND --cfg job`).
MAIN_SETTINGS = (
    ("run_dir=DIR", "where results go (default runs/<data.name>)"),
    ("model=PATH", "the checkpoint to probe (default: the base model)"),
    ("base=PATH", "an existing HF base model instead of the tiny one"),
    ("series=DIR", "probe every checkpoint under DIR in step order"),
    ("n=INT", "samples per problem (pass@k exact for k <= n; default 256)"),
    ("sampling.temperature, sampling.top_p, sampling.max_new_tokens", "how samples are drawn"),
    ("control=temperature, temperature_control.target=policy|base|both",
     "also probe at matched token entropy (policy: the checkpoint heated to the base's)"),
    ("-m sampling.temperature=0.6,1.0,1.2", "train/probe: a Hydra sweep, one run per job"),
    ("probe.limit=INT", "at most this many test problems per dataset"),
    ("probe.workers=auto|INT, probe.chunk=INT", "Ray fan-out and resume granularity"),
    ("trainer.total_training_steps, trainer.save_freq, trainer.probe=async|sync|after|off",
     "training length and probing"),
    ("engine=local|verl, dry_run=true", "this machine, or verl on GPUs (dry_run: check only, "
     "no weights needed)"),
    ("verl.KEY=VALUE, cluster.data_dir=DIR, cluster.probe_gpus=INT",
     "engine=verl: any verl ppo_trainer key; where the parquet is; the async probe's GPUs"),
    ("seed=INT, cache_dir=DIR, verbose=BOOL", ""),
    ("force=true", "replace stored results (and cached artefacts) made with other settings"),
)


def settings_help() -> str:
    """Config groups with their choices and the main settings, for every command's --help."""
    import importlib.resources as res

    root = res.files("rlboundary.conf")
    lines = ["config groups (GROUP=CHOICE):"]
    for group in sorted(p.name for p in root.iterdir() if p.is_dir() and
                        not p.name.startswith("_") and p.name != "hydra"):
        names = sorted(f.name[:-5] for f in root.joinpath(group).iterdir()
                       if f.name.endswith(".yaml"))
        label = "probe@probes.NAME" if group == "probe" else group
        lines.append(f"  {label}: {', '.join(names)}")
    lines += ["", "main settings (key=value, Hydra overrides of rlboundary/conf/config.yaml):"]
    for key, what in MAIN_SETTINGS:
        lines.append(f"  {key}" + (f": {what}" if what else ""))
    lines += ["", "--cfg job prints the composed config; user mistakes exit with code 2."]
    return "\n".join(lines)
