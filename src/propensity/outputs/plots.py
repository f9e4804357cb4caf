"""Plots of a run as PNG files: calibration (reliability diagram), cumulative gains, and what
drives a score (mean |contribution| per business field). Matplotlib with the Agg backend."""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.evaluate import calibration_table


def plot_calibration(label, probability, path, title: str) -> None:
    """Reliability diagram (equal-count bins) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = calibration_table(label, probability)
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    top = max(table["predicted"].max(), table["observed"].max()) * 1.05
    ax.plot([0, top], [0, top], color="#999", linestyle="--", linewidth=1, label="perfect")
    ax.plot(table["predicted"], table["observed"], marker="o", color="#3b6ea8", label="model")
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_gains(label, scores: dict[str, np.ndarray], path, title: str) -> None:
    """Cumulative gains: share of positives found vs share of accounts worked, one line per scorer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = np.asarray(label, dtype=float)
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="random")
    for name, score in scores.items():
        order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
        found = np.r_[0.0, np.cumsum(label[order])] / max(label.sum(), 1)
        ax.plot(np.linspace(0, 1, len(found)), found, label=name)
    ax.set_xlabel("share of accounts worked (by score)")
    ax.set_ylabel("share of positives found")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_global_importance(table: pd.DataFrame, path, top: int = 15) -> None:
    """Horizontal bar chart of the top fields (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(data) + 1.2))
    ax.barh(data["field"], data["mean_abs_contribution"], color="#3b6ea8")
    ax.set_xlabel("mean |contribution| (log-odds)")
    ax.set_title(f"What drives the {table['head'].iloc[0]} score")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
