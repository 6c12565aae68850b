"""The Displays draw what they say (checked on the Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import FAST_PARAMS
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from sk_mnist import KerasMLPClassifier, MNISTFlattener  # noqa: E402
from sk_mnist.plotting import (  # noqa: E402
    DigitGridDisplay,
    SearchResultsDisplay,
    TrainingHistoryDisplay,
)

FAST = FAST_PARAMS  # the suite's one small, fast classifier (conftest.py)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted_pipe(small_mnist):
    X, y, _, _ = small_mnist
    images = X.reshape(-1, 28, 28)
    pipe = Pipeline(
        [
            ("flatten", MNISTFlattener()),
            ("mlp", KerasMLPClassifier(validation_fraction=0.2, **FAST)),
        ]
    )
    return pipe.fit(images, y), images, y


def test_history_display_draws_the_history(fitted_pipe):
    pipe, _, _ = fitted_pipe
    display = TrainingHistoryDisplay.from_estimator(pipe)
    history = pipe[-1].history_
    assert len(display.axes_) == 2
    assert [ax.get_title() for ax in display.axes_] == ["Loss", "Accuracy"]
    assert display.axes_[0].get_xlabel() == "Epoch"
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose(display.lines_[key].get_ydata(), history[key])
        np.testing.assert_array_equal(display.lines_[key].get_xdata(), [1, 2])
    legend = [t.get_text() for t in display.axes_[0].get_legend().get_texts()]
    assert legend == ["training", "validation"]


def test_history_display_draws_into_user_axes_and_from_a_search(
    fitted_pipe, small_mnist
):
    pipe, _, _ = fitted_pipe
    fig, ax = plt.subplots()
    display = TrainingHistoryDisplay.from_estimator(pipe, metrics=["loss"], ax=ax)
    assert display.axes_[0] is ax
    assert display.figure_ is fig
    X, y, _, _ = small_mnist
    search = GridSearchCV(
        KerasMLPClassifier(**FAST), {"hidden_layer_sizes": [(16,), (32,)]}, cv=2
    )
    search.fit(X[:600], y[:600])
    display = TrainingHistoryDisplay.from_estimator(search)
    np.testing.assert_allclose(
        display.lines_["loss"].get_ydata(), search.best_estimator_.history_["loss"]
    )


def test_history_display_bad_input_is_a_clear_error(fitted_pipe):
    pipe, _, _ = fitted_pipe
    with pytest.raises(NotFittedError):
        TrainingHistoryDisplay.from_estimator(KerasMLPClassifier())
    with pytest.raises(ValueError, match=r"metrics \['auc'\] are not in the history"):
        TrainingHistoryDisplay.from_estimator(pipe, metrics=("auc",))
    with pytest.raises(TypeError, match="dict of per-epoch lists"):
        TrainingHistoryDisplay.from_history([0.1, 0.2])


def test_digit_grid_titles_match_the_predictions_and_mark_errors(fitted_pipe):
    pipe, images, y = fitted_pipe
    display = DigitGridDisplay.from_estimator(pipe, images, y)
    predicted = pipe.predict(images[:9])
    assert len(display.axes_) == 9
    for ax, p, label in zip(display.axes_, predicted, y[:9], strict=False):
        assert ax.get_title() == f"Predicted: {p} Label: {label}"
        colour = matplotlib.colors.to_hex(ax.title.get_color())
        assert (colour == matplotlib.colors.to_hex("tab:red")) == (p != label)
    np.testing.assert_array_equal(display.errors_, predicted != y[:9])


def test_digit_grid_only_errors_with_flat_input_and_probabilities(fitted_pipe):
    pipe, images, y = fitted_pipe
    flat = images.reshape(len(images), -1)
    display = DigitGridDisplay.from_estimator(
        pipe, flat, y, n_images=4, only_errors=True, show_proba=True, random_state=0
    )
    assert len(display.axes_) == 4
    assert display.errors_.all()
    for ax in display.axes_:
        assert ax.get_title().startswith("Predicted: ")
        assert "(0." in ax.get_title()
        assert ax.get_images()[0].get_array().shape == (28, 28)


def test_digit_grid_bad_input_is_a_clear_error(fitted_pipe):
    pipe, images, y = fitted_pipe
    with pytest.raises(ValueError, match="n_images must be a positive integer, got 0"):
        DigitGridDisplay.from_estimator(pipe, images, y, n_images=0)
    with pytest.raises(NotFittedError):
        DigitGridDisplay.from_estimator(KerasMLPClassifier(), images, y)
    with pytest.raises(ValueError, match="same length"):
        DigitGridDisplay.from_predictions(images[:3], y[:2], y[:3])


def test_search_results_display_draws_scores_bands_and_fit_times(small_mnist):
    X, y, _, _ = small_mnist
    sizes = [(16,), (32,), (16, 16)]
    search = GridSearchCV(
        KerasMLPClassifier(**FAST), {"hidden_layer_sizes": sizes}, cv=2
    )
    search.fit(X[:600], y[:600])
    display = SearchResultsDisplay.from_search(search)
    assert len(display.axes_) == 2
    np.testing.assert_allclose(
        display.lines_["score"].get_ydata(), search.cv_results_["mean_test_score"]
    )
    np.testing.assert_allclose(
        display.lines_["fit_time"].get_ydata(), search.cv_results_["mean_fit_time"]
    )
    labels = [t.get_text() for t in display.axes_[0].get_xticklabels()]
    assert labels == [str(s) for s in sizes]
    assert display.axes_[0].get_xlabel() == "hidden_layer_sizes"
    assert len(display.axes_[0].collections) == 1  # the one-std band
    with pytest.raises(ValueError, match="param 'dropout' was not searched"):
        SearchResultsDisplay.from_search(search, param="dropout")
    with pytest.raises(ValueError, match="no cv_results_"):
        SearchResultsDisplay.from_search(GridSearchCV(KerasMLPClassifier(), {}))


@pytest.mark.parametrize("ncols", [0, -2, 2.5, "a", True])
def test_digit_grid_refuses_a_column_count_that_is_not_one_or_more(ncols):
    # 0 used to mean the default, -2 ended in matplotlib's figure-size error.
    with pytest.raises(ValueError, match=r"ncols must be None or an integer >= 1"):
        DigitGridDisplay(np.zeros((4, 28, 28)), [1] * 4, [1] * 4).plot(ncols=ncols)
