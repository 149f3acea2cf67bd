"""PNG renderings of the search, drawn by Optuna's own matplotlib visualizations on a headless
backend; ``png`` and ``axes`` are shared with the evaluation plots. Functions return PNG bytes
so callers can write them, link them from Dagster metadata and log them to MLflow."""

from __future__ import annotations

import io
import warnings

import matplotlib

matplotlib.use("Agg")  # headless: runs inside Dagster workers and CI

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure, SubFigure  # noqa: E402


def png(figure: Figure | SubFigure) -> bytes:
    """The figure (an Axes' ``.figure``) as PNG bytes; the figure is closed."""
    fig = figure.get_figure(root=True) if isinstance(figure, SubFigure) else figure
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def axes(width: float, height: float) -> Axes:
    return plt.subplots(figsize=(width, height))[1]


def search_pngs(study: optuna.Study, metric: str) -> dict[str, bytes]:
    """Optuna's optimization history and, when trials reported pruning stages, its
    intermediate values plot."""
    from optuna.visualization import matplotlib as ov

    pngs: dict[str, bytes] = {}
    # Optuna's plot functions call plt.style.use("ggplot"), which would restyle every later
    # figure of the process (the evaluation's confusion matrix got a grid): keep it inside.
    with warnings.catch_warnings(), plt.rc_context():
        # Optuna marks its matplotlib backend experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = ov.plot_optimization_history(study, target_name=f"validation {metric}")
        pngs["optimization_history"] = png(ax.figure)
        if any(t.intermediate_values for t in study.trials):
            ax = ov.plot_intermediate_values(study)
            ax.set_ylabel(f"validation {metric} by stage")
            # One legend entry per trial: unreadable at 50 trials, and half the rendering time.
            if (legend := ax.get_legend()) is not None:
                legend.remove()
            pngs["intermediate_values"] = png(ax.figure)
    return pngs
