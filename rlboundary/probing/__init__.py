"""The probe runtime, as a pipeline that hands finished data forward: inputs (held-out problems,
checkpoints) -> plan (reuse a stored result of the same provenance) -> sample, verify and score
chunks (fanout, post_worker, rows; adaptive rounds) -> the passive results store -> metrics.
Entry points are in runner.py; temperature_control.py probes the base at a matched entropy.
"""
