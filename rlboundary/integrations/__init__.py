"""Probes for training runs rlboundary did not launch.

- ``rlboundary.integrations.ProbeCallback``: a ``transformers.TrainerCallback`` for TRL's
  trainers and any Hugging Face ``Trainer`` (hf_trainer.py);
- ``rlboundary.integrations.verl.ProbeCallback``: a verl checkpoint callback for a plain
  ``python -m verl.trainer.main_ppo`` command (verl.py).

Both compose their settings as ``rlboundary probe`` does (settings.py), so what they measure is
what the command line measures; this room reads Hydra, like the command line.
"""

from rlboundary.integrations.hf_trainer import ProbeCallback

__all__ = ["ProbeCallback"]
