"""The engines that train: ``local/`` (one machine, verl's RL math in a small loop), ``verl/``
(verl's own trainer on GPU clusters) and the tiny base model build (base_model.py). Both
engines probe their checkpoints through rlboundary.probing.
"""
