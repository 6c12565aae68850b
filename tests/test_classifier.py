"""KerasMLPClassifier: the classic network, sklearn behaviour, determinism, faults."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import joblib
import keras
import numpy as np
import pandas as pd
import pytest
from conftest import FAST_PARAMS
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import classification_report
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener
from sk_mnist._description import changes
from sk_mnist._keras.network import describe
from sk_mnist.exceptions import TrainingDivergedError

FAST = FAST_PARAMS  # the suite's one small, fast classifier (conftest.py)


def weights_equal(a, b):
    wa, wb = a.model_.get_weights(), b.model_.get_weights()
    return len(wa) == len(wb) and all(
        np.array_equal(x, y) for x, y in zip(wa, wb, strict=False)
    )


# ------------------------------------------------------------ the network
def test_summary_describes_the_classic_network_before_fitting():
    text = KerasMLPClassifier().summary()
    assert "669,706" in text
    assert text.count("Dropout") == 2


@pytest.mark.parametrize(
    ("params", "layers", "optimizer"),
    [
        (dict(hidden_layer_sizes=(512,), dropout=0), ["Dense", "Dense"], "RMSprop"),
        (
            dict(activation="sigmoid", optimizer="sgd", dropout=0.0),
            ["Dense", "Dense", "Dense"],
            "SGD",
        ),
        (dict(dropout=(0.5, 0.0)), ["Dense", "Dropout", "Dense", "Dense"], "RMSprop"),
    ],
    ids=["one-layer-no-dropout", "sigmoid-sgd", "dropout-per-layer"],
)
def test_classic_configurations_read_as_parameters(
    small_mnist, params, layers, optimizer
):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(epochs=1, random_state=0, **params).fit(X[:500], y[:500])
    assert [type(layer).__name__ for layer in clf.model_.layers] == layers
    assert type(clf.model_.optimizer).__name__ == optimizer
    if "activation" in params:
        assert clf.model_.layers[0].activation.__name__ == "sigmoid"


def test_learning_rate_and_optimizer_instance_are_copied_not_mutated(small_mnist):
    X, y, _, _ = small_mnist
    sgd = keras.optimizers.SGD(learning_rate=0.05, momentum=0.5)
    clf = KerasMLPClassifier(optimizer=sgd, **FAST).fit(X[:500], y[:500])
    assert clf.model_.optimizer is not sgd
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.05)
    assert float(clf.model_.optimizer.momentum) == pytest.approx(0.5)
    assert int(sgd.iterations) == 0
    clf = KerasMLPClassifier(learning_rate=0.003, **FAST).fit(X[:500], y[:500])
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.003)


# ------------------------------------------------- real data, the headline
def test_default_pipeline_reaches_the_classic_accuracy_on_real_mnist(
    mnist_train, mnist_test
):
    (x, y), (xt, yt) = mnist_train, mnist_test
    pipe = Pipeline(
        [("flatten", MNISTFlattener()), ("mlp", KerasMLPClassifier(random_state=0))]
    )
    pipe.fit(x, y)
    accuracy = pipe.score(xt, yt)
    print(f"default pipeline, 20 epochs: test accuracy {accuracy:.4f}")
    assert accuracy >= 0.982
    assert pipe[-1].n_iter_ == 20
    assert len(pipe[-1].loss_curve_) == 20
    assert pipe[-1].loss_curve_[-1] < pipe[-1].loss_curve_[0]
    report = classification_report(yt, pipe.predict(xt), output_dict=True)
    assert report["accuracy"] == pytest.approx(accuracy)


def test_validation_fraction_records_validation_curves(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(validation_fraction=0.1, **{**FAST, "batch_size": 500})
    clf.fit(X, y)
    assert sorted(clf.history_) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 2 for v in clf.history_.values())
    assert clf.validation_scores_ == clf.history_["val_accuracy"]
    assert clf.best_validation_score_ == max(clf.validation_scores_)


# ---------------------------------------------------- scikit-learn flows
def test_grid_search_gives_the_same_scores_with_one_and_two_jobs(small_mnist):
    X, y, _, _ = small_mnist
    pipe = Pipeline(
        [
            ("flatten", MNISTFlattener()),
            ("mlp", KerasMLPClassifier(epochs=2, batch_size=64, random_state=0)),
        ]
    )
    grid = {"mlp__hidden_layer_sizes": [(32,), (32, 32)]}
    serial = GridSearchCV(pipe, grid, cv=2, n_jobs=1).fit(X, y)
    parallel = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(
            serial.cv_results_[key], parallel.cv_results_[key]
        )
    assert serial.best_score_ > 0.75  # 1,500 training images a fold
    assert serial.best_estimator_[-1].n_iter_ == 2


def test_cross_val_score_and_classification_report(small_mnist):
    X, y, _, _ = small_mnist
    scores = cross_val_score(KerasMLPClassifier(**FAST), X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.8
    clf = KerasMLPClassifier(**FAST).fit(X, y)
    report = classification_report(y, clf.predict(X))
    assert "macro avg" in report


def test_set_params_and_clone_round_trip():
    clf = KerasMLPClassifier().set_params(
        hidden_layer_sizes=(32,), dropout=(0.1,), epochs=3
    )
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert twin.hidden_layer_sizes == (32,)
    assert twin is not clf


# ---------------------------------------------------------------- labels
def test_fit_with_string_labels_returns_the_same_labels(small_mnist):
    X, y, _, _ = small_mnist
    labels = y.astype(str)  # OpenML's '0'..'9'
    clf = KerasMLPClassifier(**FAST).fit(X, labels)
    predicted = clf.predict(X[:20])
    assert predicted.dtype.kind == "U"
    assert set(predicted) <= set(labels)
    np.testing.assert_array_equal(clf.classes_, np.array([str(d) for d in range(10)]))


def test_pandas_categorical_labels_work(small_mnist):
    X, y, _, _ = small_mnist
    labels = pd.Series(pd.Categorical(y.astype(str)), name="class")
    clf = KerasMLPClassifier(**FAST).fit(X, labels)
    assert clf.score(X, labels) > 0.8


def test_binary_target_gives_two_probability_columns(small_mnist):
    X, y, _, _ = small_mnist
    is_seven = np.where(y == 7, "seven", "other")
    clf = KerasMLPClassifier(**FAST).fit(X, is_seven)
    proba = clf.predict_proba(X[:10])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X, is_seven) > 0.9
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X[:10])), proba)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.random.default_rng(0).random(3000), "Unknown label type"),
        (np.zeros((3000, 2), dtype=int), "y should be a 1d array"),
        (np.full(3000, 4), "at least 2 classes.*only one class: 4"),
    ],
    ids=["continuous", "multi-output", "one-class"],
)
def test_unsupported_targets_are_clear_errors(small_mnist, y, message):
    X = small_mnist[0]
    with pytest.raises(ValueError, match=message):
        KerasMLPClassifier(**FAST).fit(X, y)


# ------------------------------------------------------------- weights
def test_class_weight_balanced_and_dict_change_the_fit(small_mnist):
    X, y, _, _ = small_mnist
    plain = KerasMLPClassifier(**FAST).fit(X, y)
    balanced = KerasMLPClassifier(class_weight="balanced", **FAST).fit(X, y)
    assert not weights_equal(plain, balanced)
    heavy = {k: (50.0 if k == 3 else 1.0) for k in range(10)}
    favoured = KerasMLPClassifier(class_weight=heavy, **FAST).fit(X, y)
    assert (favoured.predict(X) == 3).sum() > (plain.predict(X) == 3).sum()
    with pytest.raises(ValueError, match=r"class_weight has keys \[11\]"):
        KerasMLPClassifier(class_weight={11: 2.0}, **FAST).fit(X, y)


def test_zero_sample_weight_on_a_class_means_it_is_not_learned(small_mnist):
    X, y, _, _ = small_mnist
    weight = np.where(y == 5, 0.0, 1.0)
    clf = KerasMLPClassifier(**FAST).fit(X, y, sample_weight=weight)
    assert (clf.predict(X[y == 5]) == 5).mean() < 0.2
    with pytest.raises(ValueError, match="sample_weight"):
        KerasMLPClassifier(**FAST).fit(X, y, sample_weight=np.ones(5))


# --------------------------------------------------------- determinism
def test_same_random_state_gives_identical_weights_and_predictions(small_mnist):
    X, y, Xt, _ = small_mnist
    params = {**FAST, "validation_fraction": 0.1, "hidden_layer_sizes": (64, 32)}
    a = KerasMLPClassifier(**params).fit(X, y)
    b = KerasMLPClassifier(**params).fit(X, y)
    assert weights_equal(a, b)
    np.testing.assert_array_equal(a.predict_proba(Xt), b.predict_proba(Xt))
    c = KerasMLPClassifier(**{**params, "random_state": 1}).fit(X, y)
    assert not weights_equal(a, c)


def test_compiled_training_is_reproducible_and_partial_fit_is_one_epoch(small_mnist):
    X, y, Xt, _ = small_mnist
    params = {**FAST, "steps_per_execution": 4}
    a = KerasMLPClassifier(**params).fit(X[:600], y[:600])
    b = KerasMLPClassifier(**params).fit(X[:600], y[:600])
    assert weights_equal(a, b)
    np.testing.assert_array_equal(a.predict_proba(Xt), b.predict_proba(Xt))
    a.partial_fit(X[:600], y[:600])
    assert a.n_iter_ == len(a.history_["loss"]) == FAST["epochs"] + 1


@pytest.mark.parametrize("value", [0, "fast", 2.5])
def test_steps_per_execution_is_validated(small_mnist, value):
    X, y, _, _ = small_mnist
    with pytest.raises(ValueError, match="steps_per_execution"):
        KerasMLPClassifier(steps_per_execution=value, **FAST).fit(X[:100], y[:100])


def test_same_random_state_gives_identical_predictions_in_a_fresh_process(
    small_mnist, mnist_path
):
    X, y, Xt, _ = small_mnist
    here = KerasMLPClassifier(**FAST).fit(X, y).predict_proba(Xt)
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from sk_mnist import fetch_mnist, KerasMLPClassifier
        x, y = fetch_mnist(path={mnist_path!r}, return_X_y=True)
        xt, _ = fetch_mnist(path={mnist_path!r}, subset="test", return_X_y=True)
        f = lambda a: (a / np.float32(255)).astype(np.float32)
        clf = KerasMLPClassifier(**{FAST!r}).fit(f(x[:3000]), y[:3000])
        np.save(sys.stdout.buffer, clf.predict_proba(f(xt[:1000])))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True
    ).stdout
    import io

    there = np.load(io.BytesIO(out), allow_pickle=False)
    np.testing.assert_array_equal(here, there)


def test_global_random_state_is_not_touched(small_mnist):
    import random

    X, y, _, _ = small_mnist
    random.seed(123)
    np.random.seed(123)  # noqa: NPY002 (the global state is under test)
    expected = (random.random(), np.random.random())  # noqa: NPY002
    random.seed(123)
    np.random.seed(123)  # noqa: NPY002 (the global state is under test)
    KerasMLPClassifier(**FAST).fit(X[:500], y[:500])
    after = (random.random(), np.random.random())  # noqa: NPY002
    assert after == expected


# --------------------------------------------------------------- copies
@pytest.mark.parametrize(
    "round_trip",
    [
        lambda est: pickle.loads(pickle.dumps(est)),
        copy.deepcopy,
        lambda est: joblib.load(_dump(est)),
    ],
    ids=["pickle", "deepcopy", "joblib"],
)
def test_fitted_pipeline_round_trips_predict_identically(small_mnist, round_trip):
    X, y, Xt, _ = small_mnist
    pipe = Pipeline(
        [("flatten", MNISTFlattener()), ("mlp", KerasMLPClassifier(**FAST))]
    )
    pipe.fit(X, y)
    twin = round_trip(pipe)
    assert twin[-1].model_ is not pipe[-1].model_
    np.testing.assert_array_equal(twin.predict_proba(Xt), pipe.predict_proba(Xt))
    assert twin[-1].history_ == pipe[-1].history_


def _dump(est):
    import tempfile

    path = tempfile.mktemp(suffix=".joblib")
    joblib.dump(est, path)
    return path


def test_clone_of_a_fitted_estimator_is_unfitted(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(**FAST).fit(X[:300], y[:300])
    with pytest.raises(NotFittedError):
        clone(clf).predict(X[:3])


# ---------------------------------------------- incremental training
def test_warm_start_continues_the_same_network(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(warm_start=True, **FAST).fit(X, y)
    model = clf.model_
    first_loss = list(clf.loss_curve_)
    clf.fit(X, y)
    assert clf.model_ is model
    assert clf.n_iter_ == 4
    assert clf.loss_curve_[:2] == first_loss
    assert clf.loss_curve_[-1] < first_loss[0]
    cold = KerasMLPClassifier(**FAST).fit(X, y)
    cold_model = cold.model_
    cold.fit(X, y)
    assert cold.model_ is not cold_model
    assert cold.n_iter_ == 2


def test_partial_fit_trains_one_epoch_per_call(small_mnist):
    X, y, Xt, yt = small_mnist
    clf = KerasMLPClassifier(**FAST)
    with pytest.raises(
        ValueError, match="classes must be passed on the first call to partial_fit"
    ):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:1500], y[:1500], classes=np.arange(10))
    assert clf.n_iter_ == 1
    clf.partial_fit(X[1500:], y[1500:])
    assert clf.n_iter_ == 2
    assert clf.score(Xt, yt) > 0.7
    with pytest.raises(ValueError, match=r"labels \[12\] that are not in classes_"):
        clf.partial_fit(X[:2], np.array([12, 1]))


def test_partial_fit_knows_classes_absent_from_the_first_batch(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(**FAST).partial_fit(
        X[y < 5], y[y < 5], classes=np.arange(10)
    )
    assert clf.predict_proba(X[:3]).shape == (3, 10)


# ------------------------------------------------------ early stopping
class _RecordWeights(keras.callbacks.Callback):
    seen: list = []

    def on_epoch_end(self, epoch, logs=None):
        type(self).seen.append((logs["val_accuracy"], self.model.get_weights()))


def test_early_stopping_restores_the_best_weights(small_mnist):
    X, y, _, _ = small_mnist
    _RecordWeights.seen = []
    clf = KerasMLPClassifier(
        hidden_layer_sizes=(64,),
        learning_rate=0.01,
        batch_size=32,
        epochs=30,
        validation_fraction=0.2,
        early_stopping=True,
        n_iter_no_change=2,
        tol=0.0,
        random_state=0,
        callbacks=[_RecordWeights()],
    ).fit(X, y)
    assert clf.n_iter_ < 30
    scores = [score for score, _ in _RecordWeights.seen]
    assert scores == pytest.approx(clf.validation_scores_)
    best = int(np.argmax(scores))
    assert best < clf.n_iter_ - 1  # the last epoch was not the best
    for restored, recorded in zip(
        clf.model_.get_weights(), _RecordWeights.seen[best][1], strict=False
    ):
        np.testing.assert_array_equal(restored, recorded)


def test_early_stopping_restores_the_best_score_s_weights_whatever_tol(small_mnist):
    # Improvements smaller than tol count as none for patience, yet the
    # weights restored are those of the best score, as scikit-learn's MLP
    # keeps them: Keras's EarlyStopping moved its best only by min_delta and
    # restored the first epoch while best_validation_score_ named a later one.
    X, y, _, _ = small_mnist
    _RecordWeights.seen = []
    clf = KerasMLPClassifier(
        **{**FAST, "epochs": 10},
        validation_fraction=0.2,
        early_stopping=True,
        n_iter_no_change=2,
        tol=0.5,
        callbacks=[_RecordWeights()],
    ).fit(X, y)
    assert clf.n_iter_ == 3  # no epoch improved by 0.5
    scores = [score for score, _ in _RecordWeights.seen]
    best = int(np.argmax(scores))
    assert best > 0
    assert clf.best_validation_score_ == pytest.approx(scores[best])
    for restored, recorded in zip(
        clf.model_.get_weights(), _RecordWeights.seen[best][1], strict=True
    ):
        np.testing.assert_array_equal(restored, recorded)


def test_early_stopping_that_never_triggers_warns_convergence(small_mnist):
    X, y, _, _ = small_mnist
    with pytest.warns(ConvergenceWarning, match="maximum of 2 epochs"):
        KerasMLPClassifier(early_stopping=True, **FAST).fit(X, y)


def test_user_callbacks_are_copied_not_mutated(small_mnist):
    X, y, _, _ = small_mnist
    stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=0)
    clf = KerasMLPClassifier(callbacks=[stopper], **FAST).fit(X, y)
    assert stopper.model is None
    assert clf.callbacks[0] is stopper


def test_verbose_2_prints_one_line_per_epoch(small_mnist, capsys):
    X, y, _, _ = small_mnist
    KerasMLPClassifier(verbose=2, **FAST).fit(X[:500], y[:500])
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out
    assert "Epoch 2/2" in out
    assert "accuracy:" in out
    KerasMLPClassifier(verbose=0, **FAST).fit(X[:500], y[:500])
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- faults
def test_nan_loss_stops_with_a_clear_error_and_leaves_it_unfitted(small_mnist):
    X, y, _, _ = small_mnist
    # A learning rate this absurd overflows the weights on every backend.
    clf = KerasMLPClassifier(
        optimizer="sgd", learning_rate=1e38, **{**FAST, "epochs": 3}
    )
    with pytest.raises(
        TrainingDivergedError,
        match=r"NaN or infinite in epoch 1.*lower learning_rate \(got 1e\+38\)",
    ):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")
    with pytest.raises(NotFittedError):
        clf.predict(X[:2])


class _Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self.params is not None and getattr(self, "_epoch", 0) == 1 and batch >= 3:
            raise KeyboardInterrupt

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


@pytest.mark.parametrize("steps_per_execution", [1, 8])
def test_ctrl_c_during_fit_warns_and_keeps_a_usable_estimator(
    small_mnist, steps_per_execution
):
    X, y, Xt, _ = small_mnist
    clf = KerasMLPClassifier(
        callbacks=[_Interrupt()],
        steps_per_execution=steps_per_execution,
        **{**FAST, "epochs": 5},
    )
    with pytest.warns(UserWarning, match="interrupted by the user in epoch 2"):
        clf.fit(X, y)
    assert clf.n_iter_ == 1
    assert clf.predict(Xt).shape == (1000,)


class _Boom(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("callback failed")


def test_a_callback_that_raises_leaves_the_previous_fit_intact(small_mnist):
    X, y, Xt, _ = small_mnist
    clf = KerasMLPClassifier(**FAST).fit(X, y)
    before = clf.predict_proba(Xt)
    clf.set_params(callbacks=[_Boom()])
    with pytest.raises(RuntimeError, match="callback failed"):
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(Xt), before)
    fresh = KerasMLPClassifier(callbacks=[_Boom()], **FAST)
    with pytest.raises(RuntimeError):
        fresh.fit(X, y)
    assert not hasattr(fresh, "model_")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            dict(hidden_layer_sizes=(512, 0)),
            r"hidden_layer_sizes must be positive integers, got \(512, 0\)",
        ),
        (dict(hidden_layer_sizes=(-3,)), r"positive integers, got \(-3,\)"),
        (dict(dropout=1.0), "dropout"),
        (
            dict(hidden_layer_sizes=(8, 8), dropout=(0.2, 0.2, 0.2)),
            r"one per hidden layer \(2\), got \(0.2, 0.2, 0.2\)",
        ),
        (
            dict(hidden_layer_sizes=(8, 8), dropout=(0.2, -0.1)),
            r"\[0, 1\), got \(0.2, -0.1\)",
        ),
        (dict(activation="relux"), "activation.*'relux'"),
        (dict(optimizer="rmsprob"), "optimizer.*'rmsprob'"),
        (dict(epochs=0), "epochs.*Got 0"),
        (dict(batch_size=0), "batch_size.*Got 0"),
        (dict(validation_fraction=1.0), "validation_fraction.*Got 1.0"),
        (dict(learning_rate=-1.0), "learning_rate.*Got -1.0"),
        (dict(verbose=3), "verbose.*Got 3"),
        (dict(class_weight="auto"), "class_weight.*Got 'auto'"),
    ],
)
def test_bad_parameters_echo_the_value(small_mnist, params, message):
    X, y, _, _ = small_mnist
    with pytest.raises(ValueError, match=message):
        KerasMLPClassifier(**{**FAST, **params}).fit(X[:100], y[:100])


def test_bad_data_is_a_clear_error(small_mnist):
    X, y, _, _ = small_mnist
    bad = X[:100].copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KerasMLPClassifier(**FAST).fit(bad, y[:100])
    assert np.isnan(bad[3, 5])  # the input is untouched
    clf = KerasMLPClassifier(**FAST).fit(X[:300], y[:300])
    with pytest.raises(ValueError, match="784 features"):
        clf.predict(X[:3, :100])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        KerasMLPClassifier(**FAST).fit(X[:100], y[:99])


# -------------------------------------------------------------- predict
def test_predict_proba_from_eight_threads_matches_serial(small_mnist):
    X, y, Xt, _ = small_mnist
    clf = KerasMLPClassifier(**FAST).fit(X, y)
    chunks = np.array_split(Xt, 40)
    serial = [clf.predict_proba(chunk) for chunk in chunks]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(clf.predict_proba, chunks))
    for a, b in zip(serial, threaded, strict=False):
        np.testing.assert_array_equal(a, b)


def test_import_does_not_load_tensorflow_or_keras():
    code = (
        "import sys, sk_mnist; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------- careless calls, round two
def test_partial_fit_refuses_labels_outside_classes_on_the_first_call(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(**FAST)
    with pytest.raises(
        ValueError,
        match=r"labels \[1, 2, 3, 4, 5, 6, 7, 8\] that are not in classes \[0, 9\]",
    ):
        clf.partial_fit(X, y, classes=[0, 9])
    assert not hasattr(clf, "classes_")
    assert not hasattr(clf, "n_features_in_")


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"hidden_layer_sizes": (48,)}, "hidden_layer_sizes"),
        ({"dropout": 0.5}, "dropout"),
        ({"activation": "tanh"}, "activation"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"learning_rate": 0.5}, "learning_rate"),
    ],
)
def test_warm_start_refuses_a_network_whose_parameters_changed(
    small_mnist, change, name
):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(warm_start=True, **FAST).fit(X[:500], y[:500])
    weights, before = clf.model_.get_weights(), describe(clf.model_)
    clf.set_params(**change)
    with pytest.raises(
        ValueError, match=f"{name} was changed since the network was built"
    ):
        clf.fit(X[:500], y[:500])
    with pytest.raises(ValueError, match=f"{name} was changed"):
        clf.partial_fit(X[:500], y[:500])
    assert clf.n_iter_ == FAST["epochs"]
    for a, b in zip(weights, clf.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    clf.set_params(warm_start=False).fit(X[:500], y[:500])  # builds a new one
    after = describe(clf.model_)
    assert after != before
    assert changes(after, before)[0][0] == name


def test_negative_sample_or_class_weights_are_refused(small_mnist):
    X, y, _, _ = small_mnist
    weight = np.ones(len(y))
    weight[3] = -1.0
    with pytest.raises(
        ValueError, match="Negative values in data passed to `sample_weight`"
    ):
        KerasMLPClassifier(**FAST).fit(X, y, sample_weight=weight)
    with pytest.raises(
        ValueError, match=r"class_weight must be non-negative; got \{2: -1.0\}"
    ):
        KerasMLPClassifier(class_weight={2: -1.0}, **FAST).fit(X, y)


def test_a_batch_size_beyond_the_data_is_one_batch(small_mnist):
    X, y, _, _ = small_mnist
    huge = KerasMLPClassifier(**{**FAST, "batch_size": 2**63}).fit(X[:300], y[:300])
    whole = KerasMLPClassifier(**{**FAST, "batch_size": 300}).fit(X[:300], y[:300])
    np.testing.assert_array_equal(
        huge.predict_proba(X[:50]), whole.predict_proba(X[:50])
    )


def test_an_optimizer_keras_cannot_build_by_name_is_a_clear_error(small_mnist):
    X, y, _, _ = small_mnist
    with pytest.raises(
        ValueError,
        match="optimizer must be the name of a Keras optimizer.*'LossScaleOptimizer'",
    ):
        KerasMLPClassifier(optimizer="LossScaleOptimizer", **FAST).fit(X, y)


def test_a_network_too_large_for_memory_is_refused_before_keras_allocates(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(**{**FAST, "hidden_layer_sizes": (2**31 - 1,)})
    with pytest.raises(
        ValueError, match=r"hidden_layer_sizes=\(2147483647,\) makes a network of"
    ):
        clf.fit(X, y)
    assert not hasattr(clf, "n_features_in_")


def test_predictions_during_a_warm_start_fit_use_whole_fits_and_never_crash(
    small_mnist,
):
    X, y, Xt, _ = small_mnist
    clf = KerasMLPClassifier(warm_start=True, **{**FAST, "epochs": 1}).fit(X, y)
    stop = threading.Event()
    errors, answers = [], []

    def predict():
        while not stop.is_set():
            try:
                answers.append(clf.predict_proba(Xt[:64]))
            except Exception as exc:  # the assertion below reports them
                errors.append(repr(exc))

    threads = [threading.Thread(target=predict) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            clf.fit(X, y)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(answers) > 0
    for proba in answers:
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
