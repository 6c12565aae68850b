"""What scikit-learn's callbacks cost a fit, and what a fit without them pays.

``python benchmarks/callbacks_overhead.py [--quick]`` fits the tutorial
network (``KerasMLPClassifier`` defaults, fewer epochs) in one process, in
interleaved rounds (each round in another order, medians over rounds), as:

- no callbacks: the estimator as every fit without ``set_callbacks`` runs it;
- a passive callback: every task reported (fit and epochs), nothing asked;
- ``ProgressBar``: the nested bars drawn by scikit-learn's thread;
- ``ScoringMonitor(scoring="accuracy")``: a ``fitted_estimator`` built and
  scored on the training data after every epoch.

Each row is a ratio to the fit without callbacks, and the fits are checked
to give identical probabilities (observing a fit must not change it). The
fit-task bookkeeping a fit without callbacks does (open the fit task, end
it) is timed on its own, in microseconds. ``measure()`` returns the report
and ``table()`` its Markdown, for ``run.py`` to include; run alone, it
writes ``results/callbacks_overhead{,_quick}.{md,json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time

import report as reporting
from measure import machine

SEED = 0


class Passive:
    """A callback that sees every task and asks for nothing."""

    def setup(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass


def _peers():
    from sklearn.callback import ProgressBar, ScoringMonitor

    return {
        "no callbacks": lambda: (),
        "passive callback": lambda: (Passive(),),
        "ProgressBar": lambda: (ProgressBar(),),
        "ScoringMonitor (accuracy)": lambda: (ScoringMonitor(scoring="accuracy"),),
    }


def _bookkeeping_us(X, y, repeats=2000):
    """Microseconds that opening and ending a fit task costs with no callbacks."""
    from sklearn.callback._callback_support import callback_management_context

    from sk_mnist import KerasMLPClassifier
    from sk_mnist._callbacks import begin_fit_task

    clf = KerasMLPClassifier()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            with callback_management_context(clf):
                begin_fit_task(clf, X, y, epochs=20).end()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1e6


def measure(quick=False):
    """Fit times with each set of callbacks, as ratios to none; a dict."""
    import keras
    import numpy as np

    from sk_mnist import KerasMLPClassifier, fetch_mnist

    n_train, epochs, rounds = (3_000, 2, 3) if quick else (20_000, 3, 5)
    X, y = fetch_mnist(subset="train", return_X_y=True)
    X = (X[:n_train].reshape(n_train, -1) / np.float32(255)).astype(np.float32)
    y = y[:n_train]
    peers = _peers()
    names = list(peers)
    times = {name: [] for name in names}
    proba = {}
    # The first fit of a process also traces the backend's functions.
    KerasMLPClassifier(epochs=1, random_state=SEED).fit(X[:256], y[:256])
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            clf = KerasMLPClassifier(epochs=epochs, random_state=SEED)
            callbacks = peers[name]()
            if callbacks:
                clf.set_callbacks(*callbacks)
            # ProgressBar draws on stdout; the report is printed there too.
            with contextlib.redirect_stdout(io.StringIO()):
                start = time.perf_counter()
                clf.fit(X, y)
                times[name].append(time.perf_counter() - start)
            proba.setdefault(name, clf.predict_proba(X[:1000]))
    median = {name: float(np.median(t)) for name, t in times.items()}
    base = median["no callbacks"]
    return {
        "quick": quick,
        "machine": machine(),
        "backend": keras.backend.backend(),
        "n_train": n_train,
        "epochs": epochs,
        "rounds": rounds,
        "fits": {
            name: {
                "seconds": median[name],
                "all_seconds": times[name],
                "vs_no_callbacks": median[name] / base,
                "same_probabilities": bool(
                    np.array_equal(proba[name], proba["no callbacks"])
                ),
            }
            for name in names
        },
        "bookkeeping_us": _bookkeeping_us(X, y),
    }


def table(report):
    """The report as Markdown."""
    lines = [
        f"# scikit-learn callbacks on a fit ({'quick' if report['quick'] else 'full'})",
        "",
        reporting.machine_line(report["machine"]),
        "",
        f"Backend {report['backend']}; the default network on {report['n_train']} "
        f"images, {report['epochs']} epochs; median of {report['rounds']} "
        f"interleaved rounds.",
        "",
        "| callbacks | fit (s), median | min - max | vs no callbacks "
        "| same probabilities |",
        "|---|---|---|---|---|",
    ]
    for name, row in report["fits"].items():
        lines.append(
            f"| {name} | {row['seconds']:.2f} | {min(row['all_seconds']):.2f} - "
            f"{max(row['all_seconds']):.2f} | {row['vs_no_callbacks']:.3f} "
            f"| {row['same_probabilities']} |"
        )
    base = report["fits"]["no callbacks"]["seconds"]
    us = report["bookkeeping_us"]
    lines += [
        "",
        "Rows whose min - max ranges overlap the first row's differ by the "
        "machine's drift, not by the callbacks.",
        "",
        f"A fit without callbacks opens and ends its fit task and reports no "
        f"epoch: {us:.1f} us per fit, {us / 1e6 / base:.1e} of this fit.",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    report = measure(args.quick)
    stem = "callbacks_overhead_quick" if args.quick else "callbacks_overhead"
    reporting.write(stem, report, table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
