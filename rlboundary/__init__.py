"""rlboundary: does RL grow or shrink the set of problems a model can solve?

Train with RL on verifiable rewards (verl or the embedded local engine) and probe every
checkpoint: exact pass@k to k=256, base-model perplexity of samples, entropy and a per-problem
solvability ledger. See README.md for the tour.
"""

__version__ = "0.1.0"
