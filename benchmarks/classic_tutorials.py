"""The classic Keras MNIST tutorial networks, trained by the ``sk-mnist`` command.

Each network is one ``sk-mnist train`` run on all 60,000 training images,
reported on the 10,000 test images, exactly as a user runs it (the first row
is the README's main command with its defaults). The table the docs include
(``results/classic_tutorials.rst``) and its JSON twin are written from the
runs' own ``metrics.json``, so the figures in the docs are the command's.

    python benchmarks/classic_tutorials.py            # all four, ~5 minutes
    python benchmarks/classic_tutorials.py --quick    # 6,000 images, 2 epochs
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import report

#: Tutorial network -> the options of `sk-mnist train` that make it.
NETWORKS = {
    "512-512 relu, dropout 0.2, RMSprop, batch 128, 20 epochs (the defaults)": [],
    "512 relu, no dropout, 5 epochs": [
        "--hidden",
        "512",
        "--dropout",
        "0",
        "--epochs",
        "5",
    ],
    "512-512 sigmoid, SGD, no dropout, 20 epochs": [
        "--activation",
        "sigmoid",
        "--optimizer",
        "sgd",
        "--dropout",
        "0",
    ],
    "512-512 relu, dropout 0.2, batch 500, 10% validation": [
        "--batch-size",
        "500",
        "--validation-fraction",
        "0.1",
    ],
}


def run(options, out, quick):
    extra = ["--train-size", "6000", "--epochs", "2"] if quick else []
    command = ["sk-mnist", "train", *options, *extra, "--out", str(out)]
    subprocess.run(
        [sys.executable, "-m", "sk_mnist", *command[1:]],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    shown = shlex.join([c for c in command if c not in ("--out", str(out))])
    return {**metrics, "command": shown}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for i, (name, options) in enumerate(NETWORKS.items()):
            rows[name] = run(options, Path(folder) / str(i), args.quick)
            print(f"{rows[name]['test_accuracy']:.4f}  {name}", flush=True)
    first = next(iter(rows.values()))
    machine = (
        f"{platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, {first['backend']} backend"
    )
    lines = report.rst_list_table(
        ["Tutorial network", "Command", "Test accuracy", "Fit time"],
        [
            [
                name,
                f"``{row['command']}``",
                f"{row['test_accuracy']:.4f}",
                f"{row['fit_seconds']:.0f} s",
            ]
            for name, row in rows.items()
        ],
        widths=[30, 45, 12, 13],
    )
    lines += [f"Measured by ``benchmarks/classic_tutorials.py`` ({machine}).", ""]
    name = "classic_tutorials-quick" if args.quick else "classic_tutorials"
    (report.RESULTS / f"{name}.rst").write_text("\n".join(lines))
    (report.RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
