"""SearchResultsDisplay: mean test score per candidate of a search, and fit time."""

from __future__ import annotations

import numpy as np

from ._base import make_axes


class SearchResultsDisplay:
    """Mean cross-validated score per candidate with a band of one standard
    deviation, and the mean fit time on a second panel.

    Parameters
    ----------
    labels : list of str
        One label per candidate (its value of the parameter drawn).
    mean_score, std_score, mean_fit_time, std_fit_time : ndarray
        Per candidate, from ``cv_results_``.
    param : str
        The parameter along the horizontal axis.
    scoring : str, default="score"
        Name of the score, for the axis label.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure.
    axes_ : ndarray of matplotlib.axes.Axes
        The score panel and the fit-time panel.
    lines_ : dict of str to matplotlib.lines.Line2D
        ``"score"`` and ``"fit_time"``.

    See Also
    --------
    sklearn.model_selection.ValidationCurveDisplay : Scores along one parameter
        without a search.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from sk_mnist.plotting import SearchResultsDisplay
    >>> X, y = load_iris(return_X_y=True)
    >>> search = GridSearchCV(DecisionTreeClassifier(random_state=0),
    ...                       {"max_depth": [1, 2, 3]}, cv=3).fit(X, y)
    >>> display = SearchResultsDisplay.from_search(search, param="max_depth")
    >>> [t.get_text() for t in display.axes_[0].get_xticklabels()]
    ['1', '2', '3']
    """

    def __init__(
        self,
        labels,
        mean_score,
        std_score,
        mean_fit_time,
        std_fit_time,
        *,
        param,
        scoring="score",
    ):
        self.labels = labels
        self.mean_score = mean_score
        self.std_score = std_score
        self.mean_fit_time = mean_fit_time
        self.std_fit_time = std_fit_time
        self.param = param
        self.scoring = scoring

    def plot(self, *, ax=None):
        """Draw the scores and the fit times.

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, default=None
            Where to draw; ``None`` makes a new figure.

        Returns
        -------
        display : SearchResultsDisplay
            This object, with ``figure_``, ``axes_`` and ``lines_`` set.
        """
        figure, (score_ax, time_ax) = make_axes(ax, 2, figsize=(11, 4))
        x = np.arange(len(self.labels))
        mean, std = np.asarray(self.mean_score), np.asarray(self.std_score)
        (score_line,) = score_ax.plot(
            x, mean, marker="o", label=f"mean test {self.scoring}"
        )
        score_ax.fill_between(x, mean - std, mean + std, alpha=0.25, label="± 1 std")
        score_ax.set_ylabel(f"Test {self.scoring}")
        score_ax.set_title(f"Cross-validated {self.scoring}")
        score_ax.legend()
        fit, fit_std = np.asarray(self.mean_fit_time), np.asarray(self.std_fit_time)
        (time_line,) = time_ax.plot(x, fit, marker="o", color="tab:orange")
        time_ax.fill_between(
            x, fit - fit_std, fit + fit_std, alpha=0.25, color="tab:orange"
        )
        time_ax.set_ylabel("Mean fit time (s)")
        time_ax.set_title("Fit time")
        for axis in (score_ax, time_ax):
            axis.set_xticks(x, self.labels, rotation=30 if len(self.labels) > 6 else 0)
            axis.set_xlabel(self.param)
        figure.tight_layout()
        self.figure_ = figure
        self.axes_ = np.asarray([score_ax, time_ax])
        self.lines_ = {"score": score_line, "fit_time": time_line}
        return self

    @classmethod
    def from_search(cls, search, *, param=None, ax=None):
        """Plot the ``cv_results_`` of a fitted GridSearchCV or RandomizedSearchCV.

        Parameters
        ----------
        search : fitted GridSearchCV or RandomizedSearchCV
            The search.
        param : str, default=None
            The parameter to label the candidates with, such as
            ``"mlp__hidden_layer_sizes"``. ``None`` takes the only searched
            parameter, or labels candidates with all their parameters.
        ax : sequence of two matplotlib Axes, default=None
            Where to draw.

        Returns
        -------
        display : SearchResultsDisplay
            The drawn display.
        """
        results = getattr(search, "cv_results_", None)
        if results is None:
            raise ValueError(
                f"{type(search).__name__} is not a fitted search: it has no "
                "cv_results_. Call fit first."
            )
        params = results["params"]
        searched = sorted({key for candidate in params for key in candidate})
        if param is not None and param not in searched:
            raise ValueError(
                f"param {param!r} was not searched; the search covers {searched}."
            )
        if param is None and len(searched) == 1:
            param = searched[0]
        if param is None:
            labels = [
                ", ".join(f"{k}={v}" for k, v in sorted(p.items())) for p in params
            ]
            param = "candidate"
        else:
            labels = [str(p.get(param)) for p in params]
        scoring = search.scoring if isinstance(search.scoring, str) else "score"
        return cls(
            labels,
            results["mean_test_score"],
            results["std_test_score"],
            results["mean_fit_time"],
            results["std_fit_time"],
            param=param,
            scoring=scoring,
        ).plot(ax=ax)
