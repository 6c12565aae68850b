"""The classic Keras MNIST tutorial networks, and the best plain MLP, trained by ``sk-mnist``.

Each network is one ``sk-mnist train`` run on all 60,000 training images,
reported on the 10,000 test images, exactly as a user runs it (the first row
is the README's main command with its defaults). The last row is the recipe
for the best plain MLP (no convolutions, no augmentation): the dropout paper's
regularization (Srivastava et al., JMLR 2014) as options, trained with three
seeds. The tables the docs include (``results/classic_tutorials.rst``,
``results/best_mlp.rst``) and their JSON twins are written from the runs' own
``metrics.json``, so the figures in the docs are the command's.

    python benchmarks/classic_tutorials.py                   # both parts
    python benchmarks/classic_tutorials.py --part tutorials  # ~5 minutes
    python benchmarks/classic_tutorials.py --part recipe     # ~1 hour
    python benchmarks/classic_tutorials.py --quick           # 6,000 images, 2 epochs

Each part rewrites its own JSON; the table is drawn from both.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import report
from measure import machine

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

RECIPE_EPOCHS = 150
RECIPE_NAME = (
    "Best plain MLP: 1024-1024 relu, input dropout 0.2, dropout 0.5, max-norm 3, "
    f"SGD with Nesterov momentum 0.95, cosine from 0.05, {RECIPE_EPOCHS} epochs"
)
RECIPE = [
    "--hidden",
    "1024x1024",
    "--input-dropout",
    "0.2",
    "--dropout",
    "0.5",
    "--max-norm",
    "3",
    "--optimizer",
    "sgd",
    "--momentum",
    "0.95",
    "--learning-rate",
    "0.05",
    "--learning-rate-schedule",
    "cosine",
    "--epochs",
    str(RECIPE_EPOCHS),
    "--backend",
    "jax",
]
SEEDS = (0, 1, 2)
#: Epochs of the same network on TensorFlow, to price the recipe there.
TENSORFLOW_EPOCHS = 5


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


def tutorials(folder, quick):
    rows = {}
    for i, (name, options) in enumerate(NETWORKS.items()):
        rows[name] = run(options, folder / str(i), quick)
        print(f"{rows[name]['test_accuracy']:.4f}  {name}", flush=True)
    return rows


def recipe(folder, quick):
    """The recipe with each seed, and its cost per epoch on TensorFlow."""
    seeds = SEEDS[:1] if quick else SEEDS
    runs = {}
    for seed in seeds:
        runs[seed] = run(
            [*RECIPE, "--random-state", str(seed)], folder / f"s{seed}", quick
        )
        print(f"{runs[seed]['test_accuracy']:.4f}  recipe, seed {seed}", flush=True)
    # The whole recipe once more on TensorFlow would take longer than the
    # three JAX runs; the time of an epoch does not depend on the schedule,
    # so a few epochs of the same network price it.
    priced = run(
        [*RECIPE, "--backend", "tensorflow", "--epochs", str(TENSORFLOW_EPOCHS)],
        folder / "tensorflow",
        quick,
    )
    accuracies = [r["test_accuracy"] for r in runs.values()]
    first = runs[seeds[0]]
    per_epoch = {
        "jax": first["fit_seconds"] / first["epochs_trained"],
        "tensorflow": priced["fit_seconds"] / priced["epochs_trained"],
    }
    return {
        "name": RECIPE_NAME,
        "command": first["command"],
        "seeds": {str(seed): r for seed, r in runs.items()},
        "test_accuracy": first["test_accuracy"],
        "mean": statistics.mean(accuracies),
        "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "min": min(accuracies),
        "max": max(accuracies),
        "seconds_per_epoch": per_epoch,
        "tensorflow_projected_seconds": per_epoch["tensorflow"]
        * first["epochs_trained"],
        "tensorflow_run": priced,
        "machine": machine(),
    }


def _minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds:.0f} s"


def tutorial_table(rows, best):
    table = [
        [
            name,
            f"``{row['command']}``",
            f"{row['test_accuracy']:.4f}",
            f"{_minutes(row['fit_seconds'])} ({row['backend']})",
        ]
        for name, row in rows.items()
    ]
    if best:
        table.append(
            [
                best["name"],
                f"``{best['command']}``",
                f"{best['test_accuracy']:.4f} (seeds {', '.join(best['seeds'])}: "
                f"{best['mean']:.4f} ± {best['std']:.4f})",
                f"{_minutes(best['seeds']['0']['fit_seconds'])} (jax); "
                f"~{_minutes(best['tensorflow_projected_seconds'])} on tensorflow",
            ]
        )
    lines = report.rst_list_table(
        ["Network", "Command", "Test accuracy", "Fit time"],
        table,
        widths=[28, 44, 14, 14],
    )
    row = next(iter(rows.values()), None) or best["seeds"]["0"]
    lines += [
        "Measured by ``benchmarks/classic_tutorials.py`` on one machine "
        f"({_where(best['machine'] if best else None, row)}).",
        "",
    ]
    return lines


def _where(facts, row):
    if facts is None:
        return f"{row['backend']} backend"
    return (
        f"{facts['cpu']}, {facts['cores']} cores, Python {facts['versions']['python']}"
    )


def recipe_table(best):
    """The recipe seed by seed, its spread and its price on each backend."""
    lines = report.rst_list_table(
        ["Seed (``--random-state``)", "Test accuracy", "Test loss", "Fit time (jax)"],
        [
            [
                seed,
                f"{r['test_accuracy']:.4f}",
                f"{r['test_loss']:.4f}",
                _minutes(r["fit_seconds"]),
            ]
            for seed, r in best["seeds"].items()
        ],
        widths=[25, 25, 25, 25],
    )
    per_epoch = best["seconds_per_epoch"]
    lines += [
        f"Over the seeds: mean {best['mean']:.4f}, standard deviation "
        f"{best['std']:.4f}, from {best['min']:.4f} to {best['max']:.4f}. One epoch "
        f"took {per_epoch['jax']:.1f} s on JAX and {per_epoch['tensorflow']:.1f} s "
        f"on TensorFlow (measured over {best['tensorflow_run']['epochs_trained']} "
        f"epochs), so the recipe costs about "
        f"{_minutes(best['tensorflow_projected_seconds'])} there.",
        "",
        f"Command (seed 0): ``{best['command']}``",
        "",
        f"Measured by ``benchmarks/classic_tutorials.py --part recipe`` on "
        f"{_where(best['machine'], None)}; "
        + ", ".join(
            f"{k} {v}"
            for k, v in best["machine"]["versions"].items()
            if k in ("keras", "jax", "tensorflow", "scikit-learn")
        )
        + ".",
        "",
    ]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=["tutorials", "recipe", "all"], default="all")
    args = parser.parse_args()
    suffix = "-quick" if args.quick else ""
    files = {
        "tutorials": report.RESULTS / f"classic_tutorials{suffix}.json",
        "recipe": report.RESULTS / f"best_mlp{suffix}.json",
    }
    parts = {"tutorials": tutorials, "recipe": recipe}
    with tempfile.TemporaryDirectory() as folder:
        for name, measure in parts.items():
            if args.part in (name, "all"):
                result = measure(Path(folder) / name, args.quick)
                files[name].write_text(json.dumps(result, indent=2) + "\n")
    rows, best = (
        json.loads(path.read_text()) if path.exists() else None
        for path in files.values()
    )
    (report.RESULTS / f"classic_tutorials{suffix}.rst").write_text(
        "\n".join(tutorial_table(rows or {}, best))
    )
    if best:
        (report.RESULTS / f"best_mlp{suffix}.rst").write_text(
            "\n".join(recipe_table(best))
        )


if __name__ == "__main__":
    main()
