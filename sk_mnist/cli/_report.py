"""The test-set report, the pictures and the model card of a trained model."""

from __future__ import annotations

import json
import shlex
import sys

from ._common import MODEL_FILE, backend, printable


def report(pipe, X_test, y_test):
    """Accuracy, log loss and the classification report on the test set.

    Class names come from the model, which came from a file: they are
    escaped before they reach the terminal.
    """
    from sklearn.metrics import accuracy_score, classification_report, log_loss

    proba = pipe.predict_proba(X_test)
    predicted = pipe.classes_[proba.argmax(axis=1)]
    metrics = {
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "test_loss": float(log_loss(y_test, proba, labels=pipe.classes_)),
        "n_test": len(y_test),
    }
    print(f"Test accuracy: {metrics['test_accuracy']:.4f}")
    print(f"Test loss: {metrics['test_loss']:.4f}")
    labels = pipe.classes_
    print(
        classification_report(
            y_test,
            predicted,
            labels=labels,
            target_names=[printable(label) for label in labels],
            digits=4,
            zero_division=0,
        )
    )
    return metrics, predicted


def save_model(estimator, folder):
    from .._persistence import save

    save(estimator, folder / MODEL_FILE)


def save_figure(figure, path):
    from .._utils._files import atomic_write

    with atomic_write(path) as file:
        figure.savefig(file, format="png", dpi=100)


def save_pictures(pipe, out, X_test, y_test, predicted):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    from ..plotting import DigitGridDisplay, TrainingHistoryDisplay

    figures = {
        "training_curves.png": TrainingHistoryDisplay.from_estimator(pipe).figure_,
        "confusion_matrix.png": ConfusionMatrixDisplay.from_predictions(
            y_test, predicted, colorbar=False
        ).figure_,
    }
    if (predicted != y_test).any():
        figures["misclassified.png"] = DigitGridDisplay.from_estimator(
            pipe,
            X_test,
            y_test,
            n_images=9,
            only_errors=True,
            show_proba=True,
            random_state=0,
        ).figure_
    for name, figure in figures.items():
        save_figure(figure, out / name)
    plt.close("all")
    return list(figures)


def save_search_plot(search, grid, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import SearchResultsDisplay

    param = next(iter(grid)) if len(grid) == 1 else None
    save_figure(
        SearchResultsDisplay.from_search(search, param=param).figure_,
        out / "search_results.png",
    )
    plt.close("all")


#: The size of MNIST's training set.
MNIST_TRAIN_SIZE = 60_000


def training_data(n_train):
    """What the card says a model was trained on: all of MNIST's, or a cut."""
    if n_train == MNIST_TRAIN_SIZE:
        return "MNIST's 60,000 training images"
    return f"The first {n_train} of MNIST's 60,000 training images"


def model_card(pipe, metrics, y_test, predicted, pictures):
    """A skops model card: parameters, data, metrics, pictures, provenance."""
    import pandas as pd
    from sklearn.metrics import classification_report
    from skops import card

    from .._persistence import TRUSTED_TYPES

    result = card.Card(pipe, template=None)
    state = (
        f"Training was interrupted after {metrics['epochs_trained']} epochs."
        if metrics["interrupted"]
        else f"Trained for {metrics['epochs_trained']} epochs."
    )
    by_class = classification_report(
        y_test, predicted, digits=4, output_dict=True, zero_division=0
    )
    result.add(
        **{
            "Model description": (
                "The classic Keras Dense/Dropout MNIST network, as an "
                "sk-mnist pipeline (`MNISTFlattener` + `KerasMLPClassifier`). " + state
            ),
            "Training data": (
                f"{training_data(metrics['n_train'])} (Y. LeCun, C. Cortes, "
                f"C. J. C. Burges; CC BY-SA 3.0)."
            ),
            "Evaluation data": f"MNIST's {metrics['n_test']} test images.",
            "How it was made": (
                f"`{metrics['command']}` on the {metrics['backend']} backend, in "
                f"{metrics['fit_seconds']} s."
            ),
            "How to load it": (
                '```python\nimport sk_mnist\n\npipe = sk_mnist.load("model.skops")\n'
                '```\n\nor `skops.io.load("model.skops", trusted=[...])` naming '
                f"{', '.join(f'`{t}`' for t in TRUSTED_TYPES)}."
            ),
        }
    )
    result.add_metrics(
        description="On the test images.",
        accuracy=round(metrics["test_accuracy"], 4),
        log_loss=round(metrics["test_loss"], 4),
    )
    params = metrics["params"]
    result.add_table(
        **{
            "Hyperparameters": {
                "parameter": list(params),
                "value": [json.dumps(value) for value in params.values()],
            },
            "Versions": versions(),
            "Classification report": pd.DataFrame(by_class)
            .T.round(4)
            .reset_index(names="class"),
        }
    )
    for name in pictures:
        title = name.removesuffix(".png").replace("_", " ").capitalize()
        result.add_plot(alt_text=title, **{title: name})
    return result.render()


def versions():
    from importlib.metadata import version

    from .._version import __version__

    names = ["sk-mnist", "scikit-learn", "keras", backend(), "skops"]
    found = [__version__, *(version(n) for n in names[1:])]
    return {"package": names, "version": found}


def json_params(estimator) -> dict:
    """The estimator's parameters as JSON: tuples as lists, objects by name."""
    params = {}
    for key, value in estimator.get_params(deep=False).items():
        if isinstance(value, tuple):
            value = list(value)
        if not (value is None or isinstance(value, bool | int | float | str | list)):
            value = type(value).__name__
        params[key] = value
    return params


def command_line():
    return shlex.join(["sk-mnist", *sys.argv[1:]])


def history_csv(history):
    import pandas as pd

    frame = pd.DataFrame(history)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
    return frame.to_csv()
