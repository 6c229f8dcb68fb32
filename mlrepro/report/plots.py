"""The report's plots, drawn with matplotlib as self-contained SVG.

``matplotlib.figure.Figure`` is used directly (no pyplot): no global backend is selected,
so generating a report inside Jupyter leaves the notebook's plotting setup alone. Text is
drawn as paths (``svg.fonttype: path``), so the SVG needs no font and renders the same in
every browser, offline; the hash salt and a fixed date make the output deterministic. A
scatter of more than 1,000 points is rasterized inside its SVG (an embedded PNG), so a big
project's report stays small.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any


@dataclass
class Plot:
    title: str
    svg: str
    caption: str = ""


MAX_POINTS = 5000  # points drawn in a scatter plot
COLOR = "#3465a4"


def _figure(width: float = 4.8, height: float = 3.8) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "mlrepro"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML declaration and doctype


def _plot(title: str, fig: Any, caption: str = "") -> Plot:
    return Plot(title, _svg(fig), caption)


def _thin(*arrays: Any) -> list[Any]:
    import numpy as np

    n = len(arrays[0])
    if n <= MAX_POINTS:
        return list(arrays)
    idx = np.linspace(0, n - 1, MAX_POINTS).astype(int)
    return [np.asarray(a)[idx] for a in arrays]


def confusion(y: Any, y_pred: Any, classes: list[Any]) -> Plot:
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y, y_pred, labels=classes)
    fig = _figure(4.2 + 0.2 * len(classes), 3.8 + 0.2 * len(classes))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    labels = [str(c) for c in classes]
    ax.set_xticks(range(len(labels)), labels=labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    top = cm.max() if cm.size else 0
    if len(labels) <= 20:
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                color = "white" if cm[i, j] > top / 2 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color)
    ax.set_title("Confusion matrix (held-out rows)")
    return _plot("Confusion matrix", fig, f"{int(cm.sum())} held-out rows")


def _one_vs_rest(y: Any, proba: Any, classes: list[Any]) -> list[tuple[str, Any, Any]]:
    """(label, is_positive, score) per class; only the positive class when binary."""
    import numpy as np

    y = np.asarray(y)
    if len(classes) == 2:
        return [(str(classes[1]), y == classes[1], proba[:, 1])]
    return [(str(c), y == c, proba[:, i]) for i, c in enumerate(classes[:10])]


def roc(y: Any, proba: Any, classes: list[Any]) -> Plot:
    from sklearn.metrics import auc, roc_curve

    fig = _figure()
    ax = fig.subplots()
    for label, positive, score in _one_vs_rest(y, proba, classes):
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, score)
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (held-out rows)")
    ax.legend(loc="lower right", fontsize="small")
    return _plot("ROC curve", fig, "one curve per class against the rest when multiclass")


def precision_recall(y: Any, proba: Any, classes: list[Any]) -> Plot:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig = _figure()
    ax = fig.subplots()
    for label, positive, score in _one_vs_rest(y, proba, classes):
        if not positive.any():
            continue
        precision, recall, _ = precision_recall_curve(positive, score)
        ap = average_precision_score(positive, score)
        ax.plot(recall, precision, label=f"{label} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall (held-out rows)")
    ax.legend(loc="lower left", fontsize="small")
    return _plot("Precision-recall curve", fig)


def predicted_vs_actual(y: Any, y_pred: Any) -> Plot:
    import numpy as np

    y, y_pred = np.asarray(y, dtype=float), np.asarray(y_pred, dtype=float)
    a, p = _thin(y, y_pred)
    fig = _figure()
    ax = fig.subplots()
    ax.scatter(a, p, s=8, alpha=0.6, color=COLOR, rasterized=len(a) > 1000)
    lo, hi = float(np.nanmin([y.min(), y_pred.min()])), float(np.nanmax([y.max(), y_pred.max()]))
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted vs actual (held-out rows)")
    return _plot("Predicted vs actual", fig, f"{len(y)} held-out rows; the dashed line is y = x")


def residuals(y: Any, y_pred: Any) -> Plot:
    import numpy as np

    y, y_pred = np.asarray(y, dtype=float), np.asarray(y_pred, dtype=float)
    res = y - y_pred
    p, r = _thin(y_pred, res)
    fig = _figure(7.0, 3.6)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    left.scatter(p, r, s=8, alpha=0.6, color=COLOR, rasterized=len(p) > 1000)
    left.axhline(0, color="grey", linestyle="--", linewidth=1)
    left.set_xlabel("predicted")
    left.set_ylabel("actual - predicted")
    left.set_title("Residuals (held-out rows)")
    right.hist(res, bins=30, color=COLOR)
    right.set_xlabel("actual - predicted")
    right.set_title("Distribution")
    return _plot("Residuals", fig, f"mean {res.mean():.4g}, std {res.std():.4g}")


def importance(rows: list[tuple[str, float, float]], scoring: str, n: int) -> Plot:
    shown = rows[:20][::-1]
    fig = _figure(6.0, 1.2 + 0.28 * max(len(shown), 1))
    ax = fig.subplots()
    ax.barh([r[0] for r in shown], [r[1] for r in shown], xerr=[r[2] for r in shown], color=COLOR)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_xlabel(f"drop in {scoring} when the feature is shuffled")
    ax.set_title("Permutation importance (held-out rows)")
    caption = (
        f"model input features (after the feature steps and selection), {n} held-out rows, "
        "5 shuffles each; bars show mean and standard deviation"
    )
    return _plot("Permutation importance", fig, caption)


def delta_histogram(stage: str, deltas: list[float]) -> Plot:
    import numpy as np

    d = np.asarray(deltas, dtype=float)
    fig = _figure(6.0, 3.4)
    ax = fig.subplots()
    ax.hist(d, bins=40, color="#cc0000")
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("reproduced - recorded")
    ax.set_ylabel("values")
    ax.set_title(f"{stage}: differences between recorded and reproduced predictions")
    caption = (
        f"{len(d)} values, {int((d != 0).sum())} non-zero, max |difference| "
        f"{float(np.abs(d).max()):.3g}"
    )
    return _plot(f"Prediction differences ({stage})", fig, caption)
