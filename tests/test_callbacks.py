"""scikit-learn's callbacks (``sklearn.callback``) on KerasMLPClassifier.

Every test uses scikit-learn's real callbacks (``ProgressBar``,
``ScoringMonitor``) or small callbacks written to the protocol, on tiny
networks and scikit-learn's 8x8 digits.
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import select
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.callback import ProgressBar, ScoringMonitor
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mnist import KerasMLPClassifier, MNISTFlattener, load, save
from sk_mnist._keras import sklearn_callbacks

TINY = dict(hidden_layer_sizes=(16,), batch_size=64, epochs=3, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


class StopAfter:
    """Ends training after ``n`` epochs: ``on_fit_task_end`` returns True."""

    def __init__(self, n):
        self.n = n

    def setup(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        return context.task_name == "epoch" and context.task_id + 1 == self.n

    def teardown(self, estimator, context):
        pass


class Passive(StopAfter):
    """Sees every task and stops nothing."""

    def __init__(self):
        super().__init__(n=0)


def _tree(log):
    """The tasks a ScoringMonitor saw, lineage included: path -> (estimator, task)."""
    frame = log.data_as_pandas
    return {
        row.task_id_path: (row.estimator_name, row.task_name)
        for row in frame.itertuples()
    }


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_search_reports_its_fits_and_their_epochs_as_nested_tasks(
    digits, n_jobs, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")  # rich's width off a terminal
    X, y = digits
    epochs = 2
    monitor = ScoringMonitor(scoring="accuracy")
    clf = KerasMLPClassifier(**{**TINY, "epochs": epochs}).set_callbacks(monitor)
    search = GridSearchCV(
        clf, {"hidden_layer_sizes": [(8,), (16,)]}, cv=2, n_jobs=n_jobs
    ).set_callbacks(ProgressBar(max_propagation_depth=None))
    search.fit(X, y)

    # The tree: the search, its 4 candidate-split fits and the refit, each a
    # KerasMLPClassifier fit whose subtasks are its epochs, the leaves.
    tree = _tree(monitor.get_logs(include_lineage=True))
    expected = {(0,): ("GridSearchCV", "fit"), (0, 0): ("GridSearchCV", "search")}
    fits = [(0, 0, k) for k in range(4)] + [(0, 1)]
    for fit in fits:
        expected[fit] = ("KerasMLPClassifier", "fit")
        for epoch in range(epochs):
            expected[(*fit, epoch)] = ("KerasMLPClassifier", "epoch")
    assert tree == expected

    # One view of all of it, drawn in this process (the workers' events
    # come over scikit-learn's transport), every bar finished.
    out = capsys.readouterr().out
    for k in range(4):
        assert re.search(
            rf"GridSearchCV - candidate-split-evaluation \| KerasMLPClassifier - fit #{k}",
            out,
        )
    assert "GridSearchCV - refit-with-best-params | KerasMLPClassifier - fit" in out
    assert re.search(r"100%", out)
    assert not re.search(r"\b[0-9]{1,2}%", out)
    # Keras's own bar stayed out of it.
    assert "/step" not in out
    assert "Epoch 1/" not in out


def test_the_flattener_step_is_a_task_of_a_pipelines_progress(
    digits, capsys, monkeypatch
):
    # MNISTFlattener, the first step of every sk-mnist pipeline, is fitted in
    # one step: a leaf task (as StandardScaler's), drawn beside the
    # classifier's fit, and scikit-learn does not warn that it cannot take
    # the pipeline's callbacks.
    monkeypatch.setenv("COLUMNS", "200")
    X, y = digits
    pipe = make_pipeline(MNISTFlattener(), KerasMLPClassifier(**TINY))
    pipe.set_callbacks(ProgressBar(max_propagation_depth=None))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*does not support callbacks")
        pipe.fit(X.reshape(-1, 8, 8), y)
    out = capsys.readouterr().out
    assert re.search(
        r"Pipeline - fit-transform-mnistflattener \| MNISTFlattener - fit", out
    )
    assert "Pipeline - fit-final-estimator | KerasMLPClassifier - fit" in out


def test_scoring_monitor_in_a_pipeline_gives_one_row_per_epoch_and_fit(digits):
    X, y = digits
    epochs = 3
    monitor = ScoringMonitor(scoring=["accuracy", "neg_log_loss"])
    pipe = make_pipeline(
        StandardScaler(), KerasMLPClassifier(**{**TINY, "epochs": epochs})
    )
    pipe[-1].set_callbacks(monitor)
    cv = StratifiedKFold(2)
    results = cross_validate(pipe, X, y, cv=cv, return_estimator=True)

    # cross_validate is a function: each fit is a run of its own.
    runs = monitor.get_logs(select="all")
    assert len(runs) == 2
    frame = pd.concat([run.data_as_pandas for run in runs], keys=[0, 1])
    per_epoch = frame[frame["task_name"] == "epoch"]
    assert len(per_epoch) == epochs * 2  # epochs x fits
    assert {"accuracy", "neg_log_loss"} <= set(frame.columns)
    assert per_epoch["task_id"].tolist() == [*range(epochs)] * 2
    # The last epoch's score is the fitted classifier's, on what it trained on
    # (the pipeline's scaled features).
    for run, (train, _) in enumerate(cv.split(X, y)):
        fitted = results["estimator"][run]
        score = fitted[-1].score(fitted[0].transform(X[train]), y[train])
        assert per_epoch.loc[run]["accuracy"].iloc[-1] == score


def test_each_epochs_fitted_estimator_predicts_as_the_network_stood_then(digits):
    X, y = digits
    monitor = ScoringMonitor(scoring="accuracy")
    KerasMLPClassifier(**{**TINY, "epochs": 3}).set_callbacks(monitor).fit(X, y)
    frame = monitor.get_logs().data_as_pandas
    scores = frame[frame["task_name"] == "epoch"]["accuracy"].tolist()
    for epochs in (1, 2):
        shorter = KerasMLPClassifier(**{**TINY, "epochs": epochs}).fit(X, y)
        assert scores[epochs - 1] == shorter.score(X, y)


def test_a_stop_at_epoch_2_of_5_equals_a_2_epoch_fit(digits, tmp_path):
    from sk_mnist.onnx import to_onnx

    X, y = digits
    stopped = KerasMLPClassifier(**{**TINY, "epochs": 5}).set_callbacks(StopAfter(2))
    stopped.fit(X, y)
    two = KerasMLPClassifier(**{**TINY, "epochs": 2}).fit(X, y)

    assert stopped.n_iter_ == 2
    assert stopped.history_ == two.history_
    assert stopped.loss_curve_ == two.loss_curve_
    np.testing.assert_array_equal(stopped.predict_proba(X), two.predict_proba(X))
    # Saved and loaded, and exported, it is the 2-epoch network.
    loaded = load(save(stopped, tmp_path / "stopped.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(X), two.predict_proba(X))
    assert loaded.n_iter_ == 2
    import onnxruntime

    session = onnxruntime.InferenceSession(
        to_onnx(stopped).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    labels, proba = session.run(None, {"X": X})
    np.testing.assert_allclose(proba, two.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(labels, two.predict(X))


def test_user_keras_callbacks_keep_working_beside_sklearns(digits, tmp_path):
    X, y = digits
    seen = []
    csv = tmp_path / "epochs.csv"
    clf = KerasMLPClassifier(
        **TINY,
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: seen.append(epoch)
            ),
            keras.callbacks.CSVLogger(str(csv)),
        ],
    )
    monitor = ScoringMonitor(scoring="accuracy")
    clf.set_callbacks(monitor).fit(X, y)
    assert seen == [0, 1, 2]
    assert len(csv.read_text().splitlines()) == 1 + 3
    frame = monitor.get_logs().data_as_pandas
    assert (frame["task_name"] == "epoch").sum() == 3
    # A Keras callback that stops training is honoured too, and the
    # scikit-learn side sees the epochs that ran.
    monitor = ScoringMonitor(scoring="accuracy")
    clf = KerasMLPClassifier(**TINY, callbacks=[_StopFirstEpoch()])
    clf.set_callbacks(monitor).fit(X, y)
    assert clf.n_iter_ == 1
    frame = monitor.get_logs().data_as_pandas
    assert (frame["task_name"] == "epoch").sum() == 1


class _StopFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def test_set_callbacks_leaves_params_clone_pickle_and_saving_alone(digits, tmp_path):
    X, y = digits
    plain = KerasMLPClassifier(**TINY)
    watched = KerasMLPClassifier(**TINY).set_callbacks(
        ScoringMonitor(scoring="accuracy"), ProgressBar()
    )
    assert watched.get_params() == plain.get_params()
    assert repr(watched) == repr(plain)
    assert clone(watched).get_params() == plain.get_params()
    watched.fit(X, y)
    plain.fit(X, y)
    expected = plain.predict_proba(X)
    np.testing.assert_array_equal(watched.predict_proba(X), expected)
    # During fit only: no context is left behind.
    assert not hasattr(watched, "_callback_fit_ctx")
    for copied in (pickle.loads(pickle.dumps(watched)), copy.deepcopy(watched)):
        np.testing.assert_array_equal(copied.predict_proba(X), expected)
    # A saved model holds no callbacks: it loads with sk-mnist's trusted types
    # only, and the estimator still has its callbacks afterwards.
    loaded = load(save(watched, tmp_path / "watched.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    assert not hasattr(loaded, "_skl_callbacks")
    assert len(watched._skl_callbacks) == 2
    pipe = make_pipeline(StandardScaler(), KerasMLPClassifier(**TINY))
    pipe.set_callbacks(ProgressBar()).fit(X, y)
    np.testing.assert_array_equal(
        load(save(pipe, tmp_path / "pipe.skops")).predict_proba(X),
        pipe.predict_proba(X),
    )


# The estimator checks that look at parameters, state, pickling and refits.
_STATE_CHECKS = {
    "check_no_attributes_set_in_init",
    "check_get_params_invariance",
    "check_set_params",
    "check_dont_overwrite_parameters",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_estimators_unfitted",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_n_features_in",
}


def test_estimator_checks_pass_with_callbacks_set():
    from sklearn.utils.estimator_checks import estimator_checks_generator

    clf = KerasMLPClassifier(
        hidden_layer_sizes=(16,),
        dropout=0.0,
        optimizer="adam",
        learning_rate=0.01,
        batch_size=32,
        epochs=3,
        random_state=0,
    ).set_callbacks(ScoringMonitor(scoring="accuracy"), Passive())
    ran = set()
    for estimator, check in estimator_checks_generator(clf, mark="skip"):
        name = getattr(check, "func", check).__name__
        if name in _STATE_CHECKS:
            check(estimator)
            ran.add(name)
    assert ran == _STATE_CHECKS


def test_without_callbacks_no_epoch_is_reported_and_fits_are_identical(
    digits, monkeypatch
):
    X, y = digits

    def never(self, epoch, logs=None):
        raise AssertionError("an epoch was reported with no callback to see it")

    with monkeypatch.context() as patch:
        patch.setattr(sklearn_callbacks.EpochTasks, "on_epoch_begin", never)
        patch.setattr(sklearn_callbacks.EpochTasks, "on_epoch_end", never)
        a = KerasMLPClassifier(**TINY).fit(X, y)
        b = KerasMLPClassifier(**TINY).fit(X, y)
        # In a search that has no callbacks either.
        search = GridSearchCV(KerasMLPClassifier(**TINY), {"epochs": [1]}, cv=2)
        search.set_params(refit=False).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.history_ == b.history_
    # Observing a fit does not change it.
    c = KerasMLPClassifier(**TINY).set_callbacks(Passive()).fit(X, y)
    np.testing.assert_array_equal(c.predict_proba(X), a.predict_proba(X))
    assert c.history_ == a.history_


def test_keras_progress_bar_gives_way_to_sklearns(digits, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    X, y = digits
    KerasMLPClassifier(**TINY, verbose=1).fit(X, y)
    assert "Epoch 1/3" in capsys.readouterr().out  # Keras's bar, alone
    KerasMLPClassifier(**TINY, verbose=1).set_callbacks(ProgressBar()).fit(X, y)
    out = capsys.readouterr().out
    assert "KerasMLPClassifier - fit" in out
    assert "Epoch 1/" not in out
    assert "/step" not in out
    # The same when the ProgressBar is the pipeline's.
    make_pipeline(
        StandardScaler(), KerasMLPClassifier(**TINY, verbose=1)
    ).set_callbacks(ProgressBar(max_propagation_depth=None)).fit(X, y)
    out = capsys.readouterr().out
    assert "Pipeline - fit" in out
    assert "Epoch 1/" not in out


def test_warm_start_and_partial_fit_report_the_epochs_of_each_call(digits):
    X, y = digits
    monitor = ScoringMonitor(scoring="accuracy")
    clf = KerasMLPClassifier(**{**TINY, "warm_start": True}).set_callbacks(monitor)
    clf.fit(X, y)
    first = clf.score(X, y)
    clf.fit(X, y)
    runs = [log.data_as_pandas for log in monitor.get_logs(select="all")]
    epochs = [run[run["task_name"] == "epoch"] for run in runs]
    assert [len(run) for run in epochs] == [3, 3]
    assert clf.n_iter_ == 6
    assert epochs[0]["accuracy"].iloc[-1] == first
    assert epochs[1]["accuracy"].iloc[-1] == clf.score(X, y)
    monitor = ScoringMonitor(scoring="accuracy")
    online = KerasMLPClassifier(**TINY).set_callbacks(monitor)
    for _ in range(2):
        online.partial_fit(X, y, classes=np.unique(y))
    runs = [log.data_as_pandas for log in monitor.get_logs(select="all")]
    assert [(run["task_name"] == "epoch").sum() for run in runs] == [1, 1]
    assert runs[-1]["accuracy"].iloc[-1] == online.score(X, y)


def test_without_sklearns_callback_api_the_estimator_fits_as_with_it(
    digits, monkeypatch
):
    # scikit-learn before 1.9 has no sklearn.callback: sk-mnist's side of the
    # API, imported afresh with it hidden, has no mixin methods and opens no
    # task, and a fit through it is the same, to the last bit.
    import importlib.util

    import sk_mnist._callbacks

    with monkeypatch.context() as hide:
        for name in [n for n in sys.modules if n.startswith("sklearn.callback")]:
            hide.delitem(sys.modules, name)
        hide.setitem(sys.modules, "sklearn.callback", None)
        spec = importlib.util.spec_from_file_location(
            "sk_mnist._callbacks_without", sk_mnist._callbacks.__file__
        )
        without = importlib.util.module_from_spec(spec)
        hide.setitem(sys.modules, spec.name, without)
        spec.loader.exec_module(without)
    assert not without.HAS_CALLBACKS
    assert vars(without.CallbackSupportMixin).keys() <= {
        "__module__",
        "__doc__",
        "__dict__",
        "__weakref__",
        "__qualname__",
    }
    X, y = digits
    expected = KerasMLPClassifier(**TINY).fit(X, y).predict_proba(X)
    monkeypatch.setattr("sk_mnist._classifier.begin_fit_task", without.begin_fit_task)
    clf = KerasMLPClassifier(**TINY).fit(X, y)
    assert clf.n_iter_ == TINY["epochs"]
    np.testing.assert_array_equal(clf.predict_proba(X), expected)


# ------------------------------------------------------- the command line
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_on_terminals(commands, env, timeout=300):
    """Each ``sk-mnist ARGS`` of ``commands``, at once, on a pseudo-terminal
    of 120 columns; their exit statuses and what each terminal showed."""
    import fcntl
    import pty
    import struct
    import termios

    running = {}  # terminal fd -> (process, chunks)
    for args in commands:
        main, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        process = subprocess.Popen(
            [sys.executable, "-m", "sk_mnist", *map(str, args)],
            stdin=child,
            stdout=child,
            stderr=child,
            env={**os.environ, **env},
            close_fds=True,
        )
        os.close(child)
        running[main] = (process, [])
    results = list(running.values())
    deadline = time.monotonic() + timeout
    try:
        while running and time.monotonic() < deadline:
            ready, _, _ = select.select(list(running), [], [], 1.0)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # the child closed its terminal
                    data = b""
                if data:
                    running[fd][1].append(data)
                else:
                    os.close(fd)
                    del running[fd]
    finally:
        for fd in running:
            os.close(fd)
        for process, _ in results:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
    return [
        (
            process.returncode,
            _ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace(
                "\r", "\n"
            ),
        )
        for process, chunks in results
    ]


# Two epochs: Keras writes "Epoch 1/N" only when N > 1.
_QUICK = ["--train-size", "300", "--epochs", "2", "--hidden", "8"]


def test_train_and_search_show_progress_on_a_terminal(tmp_path, mnist_path):
    grid = ["--grid", "hidden=8,16", "--cv", "2"]
    (rc, train), (rc_search, search) = run_on_terminals(
        [
            ["train", *_QUICK, "--out", tmp_path / "t"],
            ["search", *_QUICK, *grid, "--out", tmp_path / "s"],
        ],
        {"SK_MNIST_DATA": mnist_path},
    )
    assert rc == 0, train[-3000:]
    assert "Pipeline - fit" in train
    assert "Pipeline - fit-final-estimator | KerasMLPClassifier - fit" in train
    assert "Epoch 1/2" not in train  # one bar: not Keras's as well
    assert load(tmp_path / "t" / "model.skops")[-1].n_iter_ == 2
    assert rc_search == 0, search[-3000:]
    assert "GridSearchCV - fit" in search
    assert "candidate-split-evaluation | Pipeline - fit #3" in search
    assert "KerasMLPClassifier - fit" in search
    assert "rank_test_score" in search


def test_train_and_search_print_no_progress_when_not_a_terminal(
    tmp_path, mnist_path, capsys
):
    from sk_mnist.cli import main

    saved = dict(os.environ)
    os.environ["SK_MNIST_DATA"] = mnist_path
    try:
        assert main(["train", *_QUICK, "--out", str(tmp_path / "t")]) == 0
        train = capsys.readouterr().out
        grid = ["--grid", "hidden=8,16", "--cv", "2", "--out", str(tmp_path / "s")]
        assert main(["search", *_QUICK, *grid]) == 0
        search = capsys.readouterr().out
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for out in (train, search):
        assert " - fit" not in out
        assert "%" not in out
    assert "Epoch 2/2" in train  # one line per epoch, as before
    assert "rank_test_score" in search
