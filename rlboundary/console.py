"""Console hygiene shared by the CLI and the Ray workers: our own progress bars stay, the
third-party ones and start-up notices go unless ``verbose=true``."""

from __future__ import annotations


def quiet(verbose: bool) -> None:
    """Silence third-party progress bars and start-up warnings (transformers' "Loading
    weights" bars, Ray's token-auth notice) unless ``verbose``; our own bars stay."""
    if verbose:
        return
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    logging.getLogger("ray").setLevel(logging.ERROR)
