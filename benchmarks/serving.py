"""Serving a fitted pipeline: onnxruntime against predict_proba and the peers.

For 1, 32 and 10,000 test images: the exported ONNX model in onnxruntime,
sk-mnist's ``predict_proba``, raw Keras's ``model.predict`` on the same
network and scikit-learn's ``MLPClassifier`` of the same shape; and the
import time of each serving path in a fresh interpreter. Writes
``results/serving.md`` and ``.json`` (``serving-quick`` with ``--quick``).

    python benchmarks/serving.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import report as reporting
from measure import import_time, latency, machine

SIZES = (1, 32, 10_000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    import onnxruntime
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist
    from sk_mnist.onnx import to_onnx

    n_train, epochs, repeats = (3_000, 1, 5) if args.quick else (60_000, 3, 50)
    X, y = fetch_mnist(subset="train", return_X_y=True)
    X_test, _ = fetch_mnist(subset="test", return_X_y=True)
    X, y = X[:n_train], y[:n_train]
    rows = X_test.astype(np.float32)  # raw pixels, as the pipeline takes them
    scaled = rows / np.float32(255)

    pipe = make_pipeline(
        MNISTFlattener(), KerasMLPClassifier(epochs=epochs, random_state=0)
    ).fit(X, y)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        to_onnx(pipe, path)
        session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((512, 512), max_iter=epochs, random_state=0).fit(
            X.astype(np.float32) / 255, y
        )
    model = pipe[-1].model_
    paths = {
        "onnxruntime (exported pipeline)": (
            lambda x: session.run(["probabilities"], {"X": x})[0],
            rows,
        ),
        "sk-mnist predict_proba (pipeline)": (pipe.predict_proba, rows),
        "raw Keras model.predict": (lambda x: model.predict(x, verbose=0), scaled),
        "sklearn MLPClassifier predict_proba": (mlp.predict_proba, scaled),
    }
    agreement = float(
        np.abs(
            paths["onnxruntime (exported pipeline)"][0](rows) - pipe.predict_proba(rows)
        ).max()
    )
    results = {
        name: {str(n): latency(predict, x, n, repeats) for n in SIZES}
        for name, (predict, x) in paths.items()
    }
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
        "n_train": n_train,
        "epochs": epochs,
        "max_abs_probability_difference": agreement,
        "latency_ms": results,
        "import": imports,
    }
    stem = "serving-quick" if args.quick else "serving"
    reporting.write(stem, report, table(report))
    (reporting.RESULTS / f"{stem}.rst").write_text(rst_table(report))


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
    return "\n".join([*latency, *imports, source, ""])


if __name__ == "__main__":
    main()
