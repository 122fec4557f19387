"""A PNG of a run's training loss and dev metric over optimizer steps.

Drawn with matplotlib's Agg canvas directly (no pyplot), so it works headless, in threads and in
worker processes, and never changes the global matplotlib backend of the caller.

Tested in `tests/biomodels/training/test_api.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_training(
    train_log: Sequence[Mapping[str, Any]],
    eval_log: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Write loss (left axis) and `metric` (right axis) against step to `path`; return it."""
    path = Path(path)
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps = [row["step"] for row in train_log]
    losses = [row["loss"] for row in train_log]
    ax.plot(steps, losses, color="tab:blue", marker="." if len(steps) < 50 else None, label="train loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss", color="tab:blue")
    points = [(row["step"], row[metric]) for row in eval_log if metric in row]
    if points:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in points], [p[1] for p in points], color="tab:orange", marker="o", label=f"dev {metric}")
        ax2.set_ylabel(f"dev {metric}", color="tab:orange")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
