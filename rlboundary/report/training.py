"""Training curves of a run: reward, entropy, KL to the base model and response length over
``global_step``, read from the ``kind: "train"`` lines of RUN_DIR/metrics.jsonl (results/metrics.py), with every
probed checkpoint marked, so a pass@k change can be read against what training did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rlboundary.report.fragments import figure_html
from rlboundary.report.plot_style import OKABE_ITO, new_figure, save, styled
from rlboundary.results.metrics import load_train_metrics

PANELS = (("train/reward", "reward (mean score)"), ("actor/entropy", "entropy (nats/token)"),
          ("actor/kl", "KL(policy || base) (nats/token)"),
          ("response_length/mean", "response length (tokens)"))


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    s = pd.Series(y).rolling(window, min_periods=1, center=True).mean()
    return s.to_numpy()


@styled
def training_figure(train: pd.DataFrame, probed: list[int]) -> Figure | None:
    """Four panels over ``global_step``; raw values faint, a moving average on top; dotted
    vertical lines at the probed checkpoints. None when there is no training line."""
    if train.empty:
        return None
    fig, axes = new_figure((11, 2.6), ncols=len(PANELS))
    steps = train["step"].to_numpy()
    window = max(1, len(steps) // 25)
    for ax, (key, label) in zip(axes, PANELS):
        ax.set_title(label)
        ax.set_xlabel("global_step")
        if key not in train or train[key].isna().all():
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            continue
        y = train[key].to_numpy(float)
        ax.plot(steps, y, color=OKABE_ITO["grey"], lw=0.6, alpha=0.6)
        ax.plot(steps, _smooth(y, window), color=OKABE_ITO["blue"], lw=1.5)
        for s in probed:
            if s > 0:
                ax.axvline(s, color="black", ls=":", lw=0.8)
    fig.tight_layout()
    return fig


def training_section(run_dir: Path, out_dir: Path, probed: list[int]) -> str:
    """HTML for the training curves, or "" for a probe-only run."""
    train = load_train_metrics(run_dir)
    fig = training_figure(train, probed)
    if fig is None:
        return ""
    path = save(fig, out_dir / "training.png")
    last = train.iloc[-1]
    caption = (f"Training over {int(last['step'])} steps (grey: per step; blue: moving average; "
               f"dotted: probed checkpoints {', '.join(map(str, [s for s in probed if s]))}).")
    figure = figure_html(path, caption).replace("<figure>", '<figure class="wide">', 1)
    return f"<h2>Training</h2>{figure}"


__all__ = ["training_figure", "training_section"]
