"""Dry runs without the weights: verl's validation against a stand-in model directory.

``rlboundary train engine=verl ... dry_run=true`` is what a user runs on a laptop before the
cluster, where the 7B weights are not. verl's ``validate_config`` builds PPO's critic config
(``verl.workers.config.HFModelConfig``), which reads ``config.json``, the generation config and
the tokenizer from ``critic.model.path``. When ``base.path`` holds no ``config.json`` on this
machine, the dry run validates a copy of verl's config whose model paths point at a temporary
folder holding only a ``config.json`` of the architecture ``dry_run_stand_in`` names (a
transformers ``model_type``, its defaults from ``transformers.AutoConfig.for_model``), with
verl's own ``load_tokenizer: false`` (its switch for reading only a model's config). The
printed config, and every real run, keep the real path; :data:`NOT_CHECKED` is what the dry run
then says it could not check.
"""

from __future__ import annotations

import copy
import os

from rlboundary.errors import UserError

#: What a dry run against the stand-in cannot check (printed after the validation line).
NOT_CHECKED = ("its own config.json (architecture, sizes)", "its weights",
               "its tokenizer (chat template; BOS, EOS and pad ids)")

#: verl config nodes that ``validate_config`` may turn into an ``HFModelConfig``.
MODEL_NODES = ("critic.model", "actor_rollout_ref.model")


def model_on_disk(path: str | None) -> bool:
    """Whether ``path`` is a local model directory (it holds a ``config.json``)."""
    return bool(path) and os.path.isfile(os.path.join(str(path), "config.json"))


def write_stand_in(model_type: str, folder: str) -> str:
    """Write ``folder/config.json`` for a causal LM of transformers' ``model_type`` (default
    sizes; ``architectures`` set to its ``*ForCausalLM`` class, which verl requires). Returns
    ``folder``. Raises ``UserError`` when transformers has no causal LM of that type."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    arch = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if arch is None:
        raise UserError(f"dry_run_stand_in={model_type}: not a transformers causal-LM model "
                        "type (e.g. qwen2, llama, mistral)")
    config = AutoConfig.for_model(model_type)
    config.architectures = [arch]
    config.save_pretrained(folder)
    return folder


def validation_copy(verl_cfg, stand_in: str):
    """A copy of ``verl_cfg`` whose model nodes (:data:`MODEL_NODES`) read ``stand_in`` and no
    tokenizer; ``verl_cfg`` itself is left as it was."""
    from omegaconf import OmegaConf, open_dict

    out = copy.deepcopy(verl_cfg)
    for key in MODEL_NODES:
        node = OmegaConf.select(out, key)
        if node is None:
            continue
        with open_dict(node):
            node.path = stand_in
            node.hf_config_path = None
            node.tokenizer_path = None
            node.load_tokenizer = False
    return out
