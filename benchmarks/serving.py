"""Serving a fitted pipeline: onnxruntime against predict_proba and the peers.

For 1, 32 and 10,000 test images: the exported ONNX model in onnxruntime,
sk-mnist's ``predict_proba``, raw Keras's ``model.predict`` on the same
network and scikit-learn's ``MLPClassifier`` of the same shape, in
interleaved rounds in one process; then sk-mnist against ``MLPClassifier``
again on the other Keras backend (a child process), with how far sk-mnist's
probabilities are from Keras's ``predict``, and the numpy forward pass of a
few rows against the compiled one at each batch size up to 512 (where
``sk_mnist._keras.inference.MAX_ROWS`` comes from); and the import time of
each serving path in a fresh interpreter. Writes ``results/serving.md``, ``.rst``
and ``.json`` (``serving-quick`` with ``--quick``).

    python benchmarks/serving.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import report as reporting
from measure import import_time, latency, machine

SIZES = (1, 32, 10_000)
CROSSOVER_SIZES = (16, 32, 64, 128, 256, 512)
ROUNDS = 5
PIPELINE = "sk-mnist predict_proba (pipeline)"
MLP = "sklearn MLPClassifier predict_proba"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument(
        "--backend-only", action="store_true", help=argparse.SUPPRESS
    )  # the child: sk-mnist and MLPClassifier on this backend, as JSON
    args = parser.parse_args()
    if args.backend_only:
        print(json.dumps(measure(args.quick, onnx=False)))
        return
    import keras

    here = measure(args.quick, onnx=True)
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    child = subprocess.run(
        [sys.executable, __file__, "--backend-only", *(["--quick"] * args.quick)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    backends = [here, json.loads(child.stdout)]
    imports = {
        "onnxruntime": import_time("import onnxruntime"),
        "sk-mnist (Keras, TensorFlow)": import_time(
            "import sk_mnist; from sk_mnist._keras import network"
        ),
        "scikit-learn": import_time("import sklearn.neural_network"),
    }
    report = {
        "quick": args.quick,
        "machine": machine(),
        "load_average": os.getloadavg(),
        "n_train": here["n_train"],
        "epochs": here["epochs"],
        "max_abs_probability_difference": here["onnx_difference"],
        "latency_ms": here["latency_ms"],
        "backends": backends,
        "import": imports,
    }
    stem = "serving-quick" if args.quick else "serving"
    reporting.write(stem, report, table(report))
    (reporting.RESULTS / f"{stem}.rst").write_text(rst_table(report))


def measure(quick, *, onnx):
    """Fit the pipeline and MLPClassifier; their latencies, in interleaved rounds."""
    import keras
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist

    n_train, epochs, repeats = (3_000, 1, 5) if quick else (60_000, 3, 20)
    X, y = fetch_mnist(subset="train", return_X_y=True)
    X_test, _ = fetch_mnist(subset="test", return_X_y=True)
    X, y = X[:n_train], y[:n_train]
    rows = X_test.astype(np.float32)  # raw pixels, as the pipeline takes them
    scaled = rows / np.float32(255)

    pipe = make_pipeline(
        MNISTFlattener(), KerasMLPClassifier(epochs=epochs, random_state=0)
    ).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((512, 512), max_iter=epochs, random_state=0).fit(
            X.astype(np.float32) / 255, y
        )
    model = pipe[-1].model_
    paths = {}
    out = {"backend": keras.backend.backend(), "n_train": n_train, "epochs": epochs}
    if onnx:
        import onnxruntime

        from sk_mnist.onnx import to_onnx

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            to_onnx(pipe, path)
            session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
        paths["onnxruntime (exported pipeline)"] = (
            lambda x: session.run(["probabilities"], {"X": x})[0],
            rows,
        )
        out["onnx_difference"] = float(
            np.abs(
                paths["onnxruntime (exported pipeline)"][0](rows)
                - pipe.predict_proba(rows)
            ).max()
        )
    paths[PIPELINE] = (pipe.predict_proba, rows)
    if onnx:
        paths["raw Keras model.predict"] = (
            lambda x: model.predict(x, verbose=0),
            scaled,
        )
    paths[MLP] = (mlp.predict_proba, scaled)
    # Probabilities against Keras's own predict, at each size (a few rows run
    # in numpy, more on the compiled forward pass).
    out["keras_difference"] = {
        str(n): float(
            np.abs(
                pipe.predict_proba(rows[:n]) - model.predict(scaled[:n], verbose=0)
            ).max()
        )
        for n in SIZES
    }
    # This machine's speed drifts, so the paths take turns: each round times
    # every path at every size, and a latency is the median of its rounds.
    times = {name: {str(n): [] for n in SIZES} for name in paths}
    for _ in range(ROUNDS):
        for name, (predict, x) in paths.items():
            for n in SIZES:
                times[name][str(n)].append(latency(predict, x, n, repeats))
    out["latency_ms"] = {
        name: {n: float(np.median(values)) for n, values in by_size.items()}
        for name, by_size in times.items()
    }
    out["max_rows"], out["numpy_vs_compiled"] = crossover(model, scaled, repeats)
    return out


def crossover(model, X, repeats):
    """The numpy forward pass's time over the compiled one's, by batch size.

    Both are sk-mnist's own paths for ``model``: the numpy one is allowed
    every size here for the measurement and given back its limit after.
    """
    import keras

    from sk_mnist._keras import inference, network

    backend = keras.backend.backend()
    limit = inference.MAX_ROWS[backend]
    compiled = network.forward_function(model)
    times = {n: ([], []) for n in CROSSOVER_SIZES}
    inference.MAX_ROWS[backend] = max(CROSSOVER_SIZES)
    try:
        for _ in range(ROUNDS):
            for n, (mine, theirs) in times.items():
                mine.append(
                    latency(lambda x: inference.forward(model, x), X, n, repeats)
                )
                theirs.append(latency(compiled, X, n, repeats))
    finally:
        inference.MAX_ROWS[backend] = limit
    ratios = {
        str(n): float(np.median(mine) / np.median(theirs))
        for n, (mine, theirs) in times.items()
    }
    return limit, ratios


def table(report):
    base = report["latency_ms"]["sk-mnist predict_proba (pipeline)"]
    lines = [
        f"# Serving ({'quick' if report['quick'] else 'full'})",
        "",
        reporting.machine_line(report["machine"]),
        "",
        f"The default network, {report['epochs']} epochs on {report['n_train']} "
        f"images; latency is the median of repeated calls on the test images. "
        f"ONNX probabilities differ from predict_proba by at most "
        f"{report['max_abs_probability_difference']:.1e}.",
        "",
        "| serving path | 1 (ms) | 32 (ms) | 10,000 (ms) | 1 vs predict_proba "
        "| 10,000 vs predict_proba |",
        "|---|---|---|---|---|---|",
    ]
    for name, lat in report["latency_ms"].items():
        lines.append(
            f"| {name} | {lat['1']:.3f} | {lat['32']:.3f} | {lat['10000']:.1f} | "
            f"{lat['1'] / base['1']:.2f} | {lat['10000'] / base['10000']:.2f} |"
        )
    lines += [
        "",
        "sk-mnist's pipeline against MLPClassifier on each Keras backend, each "
        "backend in its own process (a few rows run in numpy, more on Keras's "
        "compiled forward pass); the target is at most 2x MLPClassifier at 1 and "
        "32 images. The last column is the largest difference of the "
        "probabilities from Keras's `model.predict` at 1 / 32 / 10,000 images.",
        "",
        "| backend | sk-mnist 1 (ms) | MLP 1 (ms) | ratio | sk-mnist 32 (ms) "
        "| MLP 32 (ms) | ratio | vs Keras's probabilities |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in report["backends"]:
        mine, mlp = run["latency_ms"][PIPELINE], run["latency_ms"][MLP]
        diff = " / ".join(f"{d:.1e}" for d in run["keras_difference"].values())
        lines.append(
            f"| {run['backend']} | {mine['1']:.3f} | {mlp['1']:.3f} | "
            f"{mine['1'] / mlp['1']:.2f} | {mine['32']:.3f} | {mlp['32']:.3f} | "
            f"{mine['32'] / mlp['32']:.2f} | {diff} |"
        )
    lines += [
        "",
        "The numpy forward pass's median time over the compiled forward pass's, "
        "by rows per call (below 1, numpy is faster); sk-mnist runs up to "
        "`MAX_ROWS` rows in numpy.",
        "",
        "| backend | MAX_ROWS | " + " | ".join(str(n) for n in CROSSOVER_SIZES) + " |",
        "|---|---|" + "---|" * len(CROSSOVER_SIZES),
    ]
    for run in report["backends"]:
        ratios = " | ".join(f"{r:.2f}" for r in run["numpy_vs_compiled"].values())
        lines.append(f"| {run['backend']} | {run['max_rows']} | {ratios} |")
    lines += [
        "",
        f"Load average (1, 5, 15 min) at the end: "
        f"{', '.join(f'{v:.1f}' for v in report['load_average'])}.",
        "",
        "| import in a fresh interpreter | seconds | TensorFlow loaded |",
        "|---|---|---|",
    ]
    for name, imp in report["import"].items():
        lines.append(
            f"| {name} | {imp['seconds']:.2f} | {imp['tensorflow_imported']} |"
        )
    return "\n".join(lines) + "\n"


def rst_table(report):
    """The same tables for the docs, which include them."""
    base = report["latency_ms"]["sk-mnist predict_proba (pipeline)"]
    latency = reporting.rst_list_table(
        [
            "serving path",
            "1 image (ms)",
            "32 (ms)",
            "10,000 (ms)",
            "1 image, vs predict_proba",
        ],
        [
            [
                name,
                f"{lat['1']:.3f}",
                f"{lat['32']:.3f}",
                f"{lat['10000']:.1f}",
                f"{lat['1'] / base['1']:.2f}",
            ]
            for name, lat in report["latency_ms"].items()
        ],
    )
    backends = reporting.rst_list_table(
        [
            "backend",
            "sk-mnist, 1 image (ms)",
            "MLPClassifier",
            "sk-mnist, 32",
            "MLPClassifier",
        ],
        [
            [
                run["backend"],
                *(
                    f"{run['latency_ms'][name][n]:.3f}"
                    for n in ("1", "32")
                    for name in (PIPELINE, MLP)
                ),
            ]
            for run in report["backends"]
        ],
    )
    imports = reporting.rst_list_table(
        ["import in a fresh interpreter", "seconds", "TensorFlow loaded"],
        [
            [name, f"{imp['seconds']:.2f}", str(imp["tensorflow_imported"])]
            for name, imp in report["import"].items()
        ],
    )
    source = (
        f"Measured by ``benchmarks/serving.py`` "
        f"({reporting.machine_line(report['machine'])}; the default network, "
        f"{report['epochs']} epochs on {report['n_train']} images; ONNX "
        f"probabilities within {report['max_abs_probability_difference']:.1e} of "
        f"predict_proba)."
    )
    return "\n".join([*latency, *backends, *imports, source, ""])


if __name__ == "__main__":
    main()
