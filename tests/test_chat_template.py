"""data.chat_template: `none` (the default) gives every model the prompt as rendered; `model`
wraps it in the tokenizer's own chat template, in the probes, the local engine's rollouts and
verl's translation. The tokenizer here is the tiny base's with a template whose generation
prompt is `<answer>` (a turn the model then answers directly), so its effect on the samples is
plain to see."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from rlboundary.errors import UserError
from rlboundary.samplers.tokens import as_chat, encode_prompts

TEMPLATE = ("{{ bos_token }}{{ messages[0].content }}"
            "{% if add_generation_prompt %}<answer>{% endif %}")


@pytest.fixture(scope="module")
def chat_base(trained_base, tmp_path_factory) -> str:
    """The tiny base with a chat template in its tokenizer config."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("chat") / "base"
    shutil.copytree(trained_base, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = TEMPLATE
    tok.save_pretrained(out)
    return str(out)


def test_the_template_renders_one_user_turn_and_bos_once(chat_base, trained_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_base)
    (text,) = as_chat(tok, ["3+4*2?"])
    assert text == "<s>3+4*2?<answer>"
    ids = encode_prompts(tok, [text])[0]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert ids == encode_prompts(tok, ["3+4*2?"])[0] + [tok.convert_tokens_to_ids("<answer>")]
    with pytest.raises(UserError, match="has no chat template"):
        as_chat(AutoTokenizer.from_pretrained(trained_base), ["1+1?"])


def test_verl_gets_the_raw_template_or_the_models(chat_base):
    from rlboundary.commands import compose, plain
    from rlboundary.trainer.verl import launch
    from rlboundary.trainer.verl.translate import RAW_CHAT_TEMPLATE, compose_verl

    for setting, want in (("none", RAW_CHAT_TEMPLATE), ("model", None)):
        cfg = plain(compose(["engine=verl", f"data.chat_template={setting}"]))
        verl_cfg = compose_verl(cfg, chat_base, launch.callback_settings(cfg, None))
        assert verl_cfg.actor_rollout_ref.model.custom_chat_template == want


@pytest.mark.slow
def test_probes_and_training_sample_under_the_template(chat_base, tmp_path, base_overrides):
    """With the template the samples answer at once (the prompt ends in `<answer>`); without it
    they open with a tag as the base was trained to. The setting joins the provenance (and so
    the base's cache key); the local engine runs a step under it."""
    from rlboundary.cli import main
    from rlboundary.results.store import ProbeStore

    common = [f"base.path={chat_base}", "n=8", "probe.limit=8", "progress=false",
              "probe.save_samples=true", *base_overrides]
    opened = {}
    for setting in ("none", "model"):
        run = tmp_path / setting
        assert main(["probe", f"run_dir={run}", f"data.chat_template={setting}", *common]) == 0
        samples = pd.read_parquet(run / "probes" / "arithmetic" / "step_00000000.samples.parquet")
        opened[setting] = samples["text"].str.startswith("<").mean()
        prov = ProbeStore(str(run), "arithmetic", 0).provenance()
        assert prov.get("chat_template") == ("model" if setting == "model" else None)
    assert opened["none"] > 0.6 and opened["model"] < 0.2, opened
    run = tmp_path / "train"
    assert main(["train", f"base.path={chat_base}", f"run_dir={run}", "data.chat_template=model",
                 "trainer.total_training_steps=1", "trainer.save_freq=1", "trainer.probe=off",
                 "data.train_batch_size=4", "rollout.n=4", "rollout.response_length=32",
                 "actor.ppo_mini_batch_size=2", "trainer.logger=[console]", "progress=false",
                 "ray.num_cpus=2", "trainer.threads=1", *base_overrides]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1]
