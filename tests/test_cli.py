"""The sk-mnist command, run as a subprocess on small real subsets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from sk_mnist import load


def run(*args, env_data=None, check_rc=0):
    env = dict(os.environ)
    if env_data is not None:
        env["SK_MNIST_DATA"] = env_data
    result = subprocess.run(
        [sys.executable, "-m", "sk_mnist", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == check_rc, (result.stdout[-2000:], result.stderr[-2000:])
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_path):
    out = tmp_path_factory.mktemp("train")
    result = run(
        "train",
        "--subset",
        3000,
        "--epochs",
        3,
        "--hidden",
        128,
        "--validation-fraction",
        0.1,
        "--out",
        out,
        env_data=mnist_path,
    )
    return out, result


def test_train_prints_the_summary_progress_and_report(trained):
    _, result = trained
    out = result.stdout
    assert "Trainable params: 101,770" in out  # 784*128+128 + 128*10+10
    assert "Epoch 1/3" in out
    assert "Epoch 3/3" in out
    assert re.search(r"Test accuracy: 0\.(8[5-9]|9)", out)
    assert "macro avg" in out
    assert "Traceback" not in result.stderr


def test_train_writes_every_promised_file(trained, mnist_path):
    out, result = trained
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "model.skmnist",
            "metrics.json",
            "history.csv",
            "training_curves.png",
            "confusion_matrix.png",
            "misclassified.png",
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 3000
    assert metrics["n_test"] == 10_000
    assert metrics["epochs_trained"] == 3
    assert f"Test accuracy: {metrics['test_accuracy']:.4f}" in result.stdout
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == [
        "epoch",
        "accuracy",
        "loss",
        "val_accuracy",
        "val_loss",
    ]
    assert history["epoch"].tolist() == [1, 2, 3]
    for png in ("training_curves.png", "confusion_matrix.png", "misclassified.png"):
        with Image.open(out / png) as image:
            assert image.size[0] > 300
            assert image.size[1] > 200
    pipe = load(out / "model.skmnist")
    from sk_mnist import fetch_mnist

    X, y = fetch_mnist(path=mnist_path, subset="test", return_X_y=True)
    assert pipe.score(X, y) == pytest.approx(metrics["test_accuracy"])


def test_evaluate_reproduces_the_training_report(trained, mnist_path):
    out, result = trained
    again = run("evaluate", out, "--data", mnist_path)
    line = [
        line for line in result.stdout.splitlines() if line.startswith("Test accuracy")
    ][0]
    assert line in again.stdout


def test_predict_reads_images_of_any_size_and_background(trained, mnist_test, tmp_path):
    out, _ = trained
    images, labels = mnist_test
    light = tmp_path / "light.png"  # dark digit on white, 5x the size
    Image.fromarray(255 - images[0]).resize((140, 140)).save(light)
    dark = tmp_path / "dark.png"
    Image.fromarray(images[1]).resize((50, 60)).convert("RGB").save(dark)
    result = run("predict", out, light, dark)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"{light}: {labels[0]} (probability ")
    assert lines[1].startswith(f"{dark}: {labels[1]} (probability ")


def test_search_writes_results_plot_and_best_model(tmp_path, mnist_path):
    out = tmp_path / "search"
    result = run(
        "search",
        "--grid",
        "hidden=16,32",
        "--cv",
        2,
        "--subset",
        600,
        "--epochs",
        1,
        "--out",
        out,
        env_data=mnist_path,
    )
    assert "rank_test_score" in result.stdout
    assert "hidden_layer_sizes=(16,)" in result.stdout
    results = pd.read_csv(out / "cv_results.csv")
    assert len(results) == 2
    assert (out / "search_results.png").stat().st_size > 1000
    best = load(out / "model.skmnist")
    assert best[-1].n_iter_ == 1


@pytest.mark.parametrize(
    ("args", "rc", "message"),
    [
        (
            ["train", "--epochs", "0"],
            2,
            "--epochs: expected a positive integer, got '0'",
        ),
        (["train", "--backend", "torch"], 2, "invalid choice: 'torch'"),
        (["search", "--grid", "depth=3"], 2, "unknown grid parameter 'depth'"),
        (["search", "--grid", "hidden=5x0"], 2, "hidden layer sizes must be positive"),
        (["evaluate", "/nonexistent/dir"], 1, "no saved model"),
        (
            ["train", "--data", "/nonexistent.npz", "--out", "{tmp}/o"],
            1,
            "no such file",
        ),
        (
            [
                "train",
                "--dropout",
                "1.5",
                "--subset",
                "50",
                "--epochs",
                "1",
                "--out",
                "{tmp}/o",
            ],
            1,
            r"dropout rates must be in \[0, 1\), got 1.5",
        ),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_options_give_one_clear_line_and_no_traceback(
    args, rc, message, tmp_path, mnist_path
):
    import re

    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run(*args, env_data=mnist_path, check_rc=rc)
    errors = [
        line for line in result.stderr.splitlines() if line.startswith("sk-mnist")
    ]
    assert len(errors) == 1
    assert re.search(message, errors[0])
    assert "Traceback" not in result.stderr


def test_unreadable_image_and_foreign_model_are_refused(trained, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = run("predict", out, bad, check_rc=1)
    assert "not a readable image" in result.stderr
    fake = tmp_path / "model.skmnist"
    fake.write_bytes(b"\x80\x04K\x01.")  # a pickle
    result = run("predict", fake, bad, check_rc=1)
    assert (
        "not a readable image" in result.stderr
        or "not an sk-mnist model" in result.stderr
    )


def test_help_is_available_everywhere():
    for command in ([], ["train"], ["search"], ["evaluate"], ["predict"]):
        result = run(*command, "--help")
        assert "usage: sk-mnist" in result.stdout
    assert "--hidden" in run("train", "--help").stdout


def test_train_defaults_are_the_pipeline_the_accuracy_test_fits():
    # tests/test_classifier.py fits this very pipeline on all of MNIST and
    # asserts >= 0.982 test accuracy; `sk-mnist train` with no options builds it.
    from sklearn.pipeline import Pipeline

    from sk_mnist import KerasMLPClassifier, MNISTFlattener
    from sk_mnist.cli import _pipeline, build_parser

    args = build_parser().parse_args(["train"])
    cli = _pipeline(args, verbose=0)
    reference = Pipeline(
        [("flatten", MNISTFlattener()), ("mlp", KerasMLPClassifier(random_state=0))]
    )
    assert cli.get_params(deep=True).keys() == reference.get_params(deep=True).keys()
    for key, value in reference.get_params(deep=True).items():
        if key not in ("steps", "flatten", "mlp"):
            assert cli.get_params(deep=True)[key] == value, key
