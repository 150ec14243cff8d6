"""The run directory's format, read by the report and written by probing and both engines:
per-problem parquet files and their parts (store.py), the provenance record each carries
(provenance.py) and RUN_DIR/metrics.jsonl (metrics.py). Imports nothing above it.
"""
