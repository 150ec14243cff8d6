"""The run directory's format, read by the report and written by probing and both engines:
per-problem parquet files and their parts (store.py), the provenance record each carries
(provenance.py), RUN_DIR/metrics.jsonl (metrics.py) and the temperature control's
RUN_DIR/control.json (control.py). Imports nothing above it.
"""
