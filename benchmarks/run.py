"""sk-mnist benchmarks: training speed, latency and memory against the peers.

Run ``python benchmarks/run.py`` (full: the 60,000 real training images) or
``python benchmarks/run.py --quick`` (a smoke run on a small subset). Each
measurement runs in its own child process (``measure.py``), because Keras
picks its backend at import. Results go to ``benchmarks/results/`` as
Markdown and JSON with the machine's facts (``report.py``). Nothing here
fails on a time: the numbers are reported. The peers are in ``peers.py``;
``serving.py`` measures prediction and ONNX serving, ``classic_tutorials.py``
the accuracy of the classic networks, ``dask_search.py`` a search on Dask.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

import report as reporting
from measure import import_time, machine, run_child


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a subset")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    args = parser.parse_args()
    n_train, epochs = (3_000, 2) if args.quick else (60_000, 3)
    sizes = ["--n-train", str(n_train), "--epochs", str(epochs)]
    report = {
        "quick": args.quick,
        "machine": machine(),
        "import": import_time(),
        "speed": {},
    }
    for backend in args.backends:
        if backend == "jax" and not importlib.util.find_spec("jax"):
            report["speed"][backend] = {"error": "jax is not installed"}
            continue
        extra = ["--repeats", "5"] if args.quick else ["--rounds", "3"]
        report["speed"][backend] = run_child(backend, "speed", *sizes, *extra)
    report["memory"] = {
        name: run_child("tensorflow", "memory", "--of", name, *sizes)
        for name in ("raw", "sk-mnist")
    }
    report["growth"] = run_child(
        "tensorflow", "growth", "--fits", "5" if args.quick else "30"
    )
    if not args.quick:
        report["time_to_98"] = {
            b: run_child(b, "accuracy")
            for b in args.backends
            if "error" not in report["speed"].get(b, {})
        }
    stem = "quick" if args.quick else "full"
    reporting.write(stem, report, reporting.training_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
