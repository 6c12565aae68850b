"""Measurements, each run in a child process of its own Keras backend.

``python benchmarks/measure.py speed|memory|growth|accuracy [options]``
prints one JSON object; :func:`run_child` starts it and reads it back. The
helpers (matmul throughput, latency, import time, machine facts) are shared
by every benchmark script.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from peers import EpochTimer, data, training_peers, tutorial_model

SEED = 0


def matmul_gflops():
    """float32 matrix-multiply throughput of the backend, the machine's limit."""
    import keras

    n = 2048
    a = keras.random.normal((n, n), seed=1)
    b = keras.random.normal((n, n), seed=2)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def latency(predict, X, n, repeats):
    x = X[:n]
    predict(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1000


def speed(args):
    """Epoch time, accuracy and latency of every peer, in interleaved rounds."""
    import keras
    import numpy as np

    backend = keras.backend.backend()
    X, y, Xf, Xt_flat, yt = data(args.n_train)
    out = {"backend": backend, "n_train": len(X), "epochs": args.epochs, "peers": {}}
    out["matmul_gflops"] = matmul_gflops()
    peers = training_peers(args.epochs, timer := EpochTimer())
    names = [name for name in peers if not args.only or name in args.only]
    # This machine's speed drifts by more than the 3% asked of sk-mnist, so the
    # peers are fitted in interleaved rounds, each round in another order, and
    # a peer's epoch time is its median over all rounds.
    steady_by_peer = {name: [] for name in names}
    for round_ in range(args.rounds - 1):
        shift = round_ % len(names)
        for name in reversed(names[shift:] + names[:shift]):
            timer.times = []
            try:
                peers[name](X, y, Xf)
            except Exception:  # noqa: BLE001 - reported in the final round
                continue
            steady_by_peer[name] += timer.times[1:] or timer.times
            gc.collect()
    for name in names:
        make = peers[name]
        timer.times = []
        gc.collect()
        start = time.perf_counter()
        try:
            predict = make(X, y, Xf)
            total = time.perf_counter() - start
            proba = np.asarray(predict(Xt_flat))
        except Exception as exc:  # noqa: BLE001 - a failing peer is reported
            out["peers"][name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        steady = steady_by_peer[name] + (timer.times[1:] or timer.times)
        out["peers"][name] = {
            "fit_seconds": total,
            "epoch_seconds": timer.times,
            "steady_epoch_seconds": float(np.median(steady)),
            "test_accuracy": float((proba.argmax(axis=1) == yt).mean()),
            "latency_ms": {
                str(n): latency(predict, Xt_flat, n, args.repeats)
                for n in (1, 32, 10_000)
            },
        }
        print(
            f"[{backend}] {name}: {out['peers'][name]['steady_epoch_seconds']:.2f} s/epoch",
            file=sys.stderr,
            flush=True,
        )
    json.dump(out, sys.stdout)


def memory(args):
    """Peak RSS of one fit (sk-mnist Pipeline or raw Keras), in its own process."""
    from sk_mnist import fetch_mnist

    # Each side holds only what it needs: the tutorial's float32 copy for raw
    # Keras, the uint8 images for the Pipeline (its flattener makes the copy).
    X, y = fetch_mnist(subset="train", return_X_y=True)
    X, y = X[: args.n_train], y[: args.n_train]
    gc.collect()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.memory == "raw":
        import keras

        Xf = X.astype("float32")
        Xf /= 255
        tutorial_model().fit(
            Xf,
            keras.utils.to_categorical(y, 10),
            batch_size=128,
            epochs=args.epochs,
            verbose=0,
        )
    else:
        from sklearn.pipeline import make_pipeline

        from sk_mnist import KerasMLPClassifier, MNISTFlattener

        make_pipeline(
            MNISTFlattener(), KerasMLPClassifier(epochs=args.epochs, random_state=0)
        ).fit(X, y)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump({"peak_rss_mb": peak / 1024, "before_fit_mb": base / 1024}, sys.stdout)


def growth(args):
    """RSS after each of N successive small fits in one process."""
    from sk_mnist import KerasMLPClassifier

    _, y, Xf, _, _ = data(2_000)
    rss = []
    for i in range(args.fits):
        KerasMLPClassifier(hidden_layer_sizes=(128,), epochs=1, random_state=i).fit(
            Xf, y
        )
        gc.collect()
        with open("/proc/self/statm") as f:
            rss.append(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)
    json.dump({"rss_mb": rss}, sys.stdout)


def accuracy(args):
    """Wall time until the default network first reaches 98% test accuracy."""
    import keras
    import numpy as np

    from sk_mnist import KerasMLPClassifier

    _, y, Xf, Xt, yt = data(60_000)
    start, reached = time.perf_counter(), {}

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            acc = float(
                (np.asarray(self.model.predict_on_batch(Xt)).argmax(1) == yt).mean()
            )
            reached.setdefault("curve", []).append(
                (epoch + 1, time.perf_counter() - start, acc)
            )
            if acc >= 0.98 and "seconds" not in reached:
                reached["seconds"], reached["epoch"] = (
                    time.perf_counter() - start,
                    epoch + 1,
                )

    KerasMLPClassifier(random_state=0, callbacks=[Probe()]).fit(Xf, y)
    json.dump({"backend": keras.backend.backend(), **reached}, sys.stdout)


def run_child(backend, mode, *options):
    """Run ``measure.py MODE OPTIONS`` on ``backend``; its JSON, or an error."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, __file__, mode, *options],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "Error" in line]
        return {"error": (errors or ["failed"])[-1][:300]}
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    sys.stderr.write("".join(line + "\n" for line in progress))
    return json.loads(result.stdout)


def import_time(statement="import sk_mnist"):
    """Seconds a fresh interpreter takes for ``statement``; which backends it loaded."""
    code = (
        f"import time, sys; t = time.perf_counter(); {statement}; "
        "print(time.perf_counter() - t, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return {
        "seconds": float(out[0]),
        "tensorflow_imported": out[1] == "True",
        "keras_imported": out[2] == "True",
    }


def machine():
    import sklearn

    versions = {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
    }
    names = ("numpy", "keras", "tensorflow", "jax", "scikeras", "skops", "skl2onnx")
    for name in (*names, "onnxruntime", "sk_mnist"):
        spec = importlib.util.find_spec(name)
        if spec:
            try:
                from importlib.metadata import version

                versions[name] = version(name.replace("_", "-"))
            except Exception:  # noqa: BLE001 - a version is only informative
                versions[name] = "installed"
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": versions,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    for mode in ("speed", "memory", "growth", "accuracy"):
        sub = modes.add_parser(mode, help=globals()[mode].__doc__.splitlines()[0])
        sub.add_argument("--n-train", type=int, default=60_000)
        sub.add_argument("--epochs", type=int, default=3)
        if mode == "speed":
            sub.add_argument("--repeats", type=int, default=20)
            sub.add_argument("--rounds", type=int, default=1)
            sub.add_argument("--only", nargs="*")
        if mode == "memory":
            sub.add_argument("--of", dest="memory", choices=["raw", "sk-mnist"])
        if mode == "growth":
            sub.add_argument("--fits", type=int, default=30)
    args = parser.parse_args()
    globals()[args.mode](args)


if __name__ == "__main__":
    main()
