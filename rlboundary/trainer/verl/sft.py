"""``rlboundary train algorithm=distill engine=verl``: distillation on verl 0.9.1's own SFT trainer
(``verl/trainer/sft_trainer.py``, config ``sft_trainer_engine.yaml``).

The same rlboundary config as the local engine's distillation (trainer/local/distill.py) is
translated into overrides of verl's SFT config: the base model, the teacher's kept samples as a
parquet of ``messages`` (one user turn, the rendered prompt; one assistant turn, the verified
response), one update of ``data.train_batch_size`` samples per step, AdamW with the actor's
settings, HF weights in every checkpoint (so the probes read ``global_step_N/huggingface``),
``trainer.default_local_dir`` = RUN_DIR/checkpoints. Base models see their prompt raw: the
chat template below renders the user turn as BOS + text and the assistant turn as text + EOS,
as the local engine encodes them.

Built so far: the translation and ``dry_run=true``, which composes verl's SFT config and runs
what ``SFTTrainer._build_config`` runs on it (verl's own dataclass conversion of the model,
engine, optimizer, checkpoint and profiler nodes), on a stand-in model where the weights are
not on this machine. Not built: the cluster run itself (the teacher's samples drawn with vLLM
into ``cluster.data_dir/distill``, ``torchrun -m verl.trainer.sft_trainer``, probes after).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from rlboundary.errors import UserError
from rlboundary.hydra_scope import first_line, own_hydra
from rlboundary.trainer.verl.stand_in import NOT_CHECKED, model_on_disk, write_stand_in
from rlboundary.trainer.verl.translate import flatten, render

#: Base models: the user turn as BOS + the rendered prompt, the assistant turn as the response
#: + EOS (what trainer/local/distill.encode_samples trains on).
SFT_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}{% if bos_token %}"
                "{{ bos_token }}{% endif %}{{ m['content'] }}{% else %}{{ m['content'] }}"
                "{{ eos_token }}{% endif %}{% endfor %}")

#: The nodes verl's ``SFTTrainer._build_config`` turns into dataclasses.
SFT_NODES = ("model", "engine", "optim", "checkpoint", "profiler")


def sft_data_file(cfg: Mapping[str, Any]) -> str:
    """Where the teacher's kept samples are read on the cluster (``messages`` parquet)."""
    return os.path.join(cfg["cluster"]["data_dir"], "distill", cfg["data"]["name"],
                        "train.parquet")


def sft_translation(cfg: Mapping[str, Any], model_path: str) -> dict[str, Any]:
    """{verl SFT key: value} for rlboundary's plain config ``cfg`` training ``model_path``."""
    actor, tr, d = cfg["actor"], cfg["trainer"], cfg["distill"]
    out = {"model.path": model_path,
           "data.train_files": sft_data_file(cfg), "data.val_files": None,
           "data.messages_key": "messages",
           "data.train_batch_size": cfg["data"]["train_batch_size"],
           "data.micro_batch_size_per_gpu": actor["ppo_micro_batch_size_per_gpu"],
           "data.max_length": int(cfg["sampling"]["max_new_tokens"]) + int(d["max_new_tokens"]),
           "optim.lr": actor["optim"]["lr"], "optim.betas": actor["optim"]["betas"],
           "optim.weight_decay": actor["optim"]["weight_decay"],
           "optim.lr_warmup_steps": actor["optim"]["lr_warmup_steps"],
           "optim.clip_grad": actor["grad_clip"],
           "checkpoint.save_contents": ["model", "optimizer", "extra", "hf_model"],
           "trainer.total_training_steps": tr["total_training_steps"],
           "trainer.save_freq": tr["save_freq"] or -1, "trainer.test_freq": -1,
           "trainer.seed": cfg["seed"],
           "trainer.project_name": tr["project_name"],
           "trainer.experiment_name": tr["experiment_name"],
           "trainer.logger": [b for b in tr["logger"] if b in ("console", "wandb")] + ["file"],
           "trainer.default_local_dir": os.path.join(os.path.abspath(cfg["run_dir"]),
                                                     "checkpoints"),
           "trainer.resume_mode": "auto" if cfg["resume"] == "auto" else "disable"}
    return out


def compose_sft(cfg: Mapping[str, Any], model_path: str):
    """verl's composed ``sft_trainer_engine`` DictConfig for ``cfg``: the translation, then
    ``cfg["verl"]`` (``verl.KEY=VALUE``), which wins; the raw template for base models
    (``data.chat_template=none``). Raises ``UserError`` with Hydra's first line when verl's
    config rejects a setting."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    pairs = list(sft_translation(cfg, model_path).items()) + list(flatten(cfg["verl"]).items())
    words = [f"{k}={render(v)}" for k, v in pairs]
    try:
        with own_hydra(), initialize_config_module("verl.trainer.config", version_base=None):
            out = compose("sft_trainer_engine", overrides=words)
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(f"engine=verl algorithm=distill: verl's SFT config rejects a setting: "
                        f"{first_line(e)}") from None
    if cfg["data"]["chat_template"] == "none":
        with open_dict(out):
            out.model.custom_chat_template = SFT_TEMPLATE
    return out


def validate_sft(sft_cfg) -> None:
    """What verl's ``SFTTrainer._build_config`` does first: each of :data:`SFT_NODES` through
    ``verl.utils.config.omega_conf_to_dataclass`` (the model's config and tokenizer are read
    there). Raises ``UserError`` with verl's message."""
    from verl.utils.config import omega_conf_to_dataclass

    for node in SFT_NODES:
        try:
            omega_conf_to_dataclass(sft_cfg[node])
        except Exception as e:  # noqa: BLE001 - verl raises many kinds; one line for the user
            raise UserError(f"engine=verl algorithm=distill: verl's SFT config `{node}` does "
                            f"not validate: {' '.join(str(e).split())[:300]}") from None


def dry_run(cfg: Mapping[str, Any], model_path: str) -> dict[str, Any]:
    """Compose, validate and print verl's SFT config; launch nothing. Where ``model_path`` is
    not on this machine the validation reads a stand-in ``config.json`` of
    ``dry_run_stand_in`` and no tokenizer, and says so. Returns ``{"verl_config": cfg}``."""
    import copy

    from omegaconf import OmegaConf, open_dict

    sft_cfg = compose_sft(cfg, model_path)
    lines = []
    if model_on_disk(model_path):
        validate_sft(sft_cfg)
    else:
        with tempfile.TemporaryDirectory(prefix="rlboundary_stand_in_") as folder:
            write_stand_in(cfg["dry_run_stand_in"], folder)
            check = copy.deepcopy(sft_cfg)
            with open_dict(check):
                check.model.path, check.model.load_tokenizer = folder, False
                check.model.custom_chat_template = None   # it sets the tokenizer's
            validate_sft(check)
        lines.append(f"the model at base.path={model_path} (not on this machine; verl "
                     f"validated a stand-in {cfg['dry_run_stand_in']} config.json, "
                     "dry_run_stand_in): " + ", ".join(NOT_CHECKED))
    data = sft_data_file(cfg)
    if not os.path.exists(data):
        lines.append(f"{data} (the teacher's kept samples as `messages`): not on this machine")
    print(OmegaConf.to_yaml(sft_cfg), end="")
    print(f"[rlboundary] verl SFT config validated ({sft_cfg.trainer.nnodes} node(s) x "
          f"{sft_cfg.trainer.n_gpus_per_node} GPUs); dry run: nothing launched")
    for line in lines:
        print(f"[rlboundary] not checked: {line}")
    return {"verl_config": sft_cfg}
