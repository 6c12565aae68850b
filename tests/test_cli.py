"""The sk-mnist command, run as a subprocess on small real subsets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
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
        "--train-size",
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
    # The command's own output only: no TensorFlow start-up notes or warnings.
    assert result.stderr == ""


def test_train_writes_every_promised_file(trained, mnist_path):
    out, result = trained
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "model.skops",
            "README.md",
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
    assert metrics["interrupted"] is False
    assert metrics["command"].startswith("sk-mnist train --train-size 3000")
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
    pipe = load(out / "model.skops")
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
        "--train-size",
        600,
        "--epochs",
        1,
        "--out",
        out,
        env_data=mnist_path,
    )
    assert "rank_test_score" in result.stdout
    assert "hidden_layer_sizes=(16,)" in result.stdout
    assert result.stderr == ""  # no TensorFlow retracing notices
    results = pd.read_csv(out / "cv_results.csv")
    assert len(results) == 2
    assert (out / "search_results.png").stat().st_size > 1000
    best = load(out / "model.skops")
    assert best[-1].n_iter_ == 1


_QUICK = ["--train-size", "300", "--epochs", "1", "--hidden", "16"]


@pytest.mark.parametrize(
    ("args", "rc", "message"),
    [
        (
            ["train", "--epochs", "0"],
            2,
            "--epochs: expected a positive integer, got '0'",
        ),
        (
            ["train", "--batch-size", "1e20"],
            2,
            "expected a positive integer, got '1e20'",
        ),
        (["train", "--backend", "torch"], 2, "invalid choice: 'torch'"),
        (["train", "--hidden", "512x0"], 2, "positive integers joined by x"),
        (["search", "--grid", "depth=3"], 2, "KEY one of"),
        (["search", "--grid", "hidden=5x0"], 2, "positive integers joined by x"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["evaluate", "/nonexistent/dir"], 1, "no saved model"),
        (["train", "--data", "/nonexistent.npz", *_QUICK], 1, "no such file"),
        (
            ["train", "--dropout", "1.5", *_QUICK],
            1,
            r"'dropout' parameter .* Got 1.5",
        ),
        (
            ["train", "--activation", "bogus", *_QUICK],
            1,
            "activation must be the name of a Keras activation.*'bogus'",
        ),
        (
            ["train", "--optimizer", "LossScaleOptimizer", *_QUICK],
            1,
            "optimizer must be the name of a Keras optimizer",
        ),
        (
            ["train", "--hidden", "2147483647", *_QUICK[:4]],
            1,
            r"hidden_layer_sizes=\(2147483647,\) makes a network of",
        ),
        (
            [
                "train",
                "--learning-rate",
                "1e30",
                "--optimizer",
                "sgd",
                "--train-size",
                "300",
                "--epochs",
                "2",
            ],
            1,
            "NaN or infinite in epoch 1",
        ),
        (
            ["search", "--grid", "dropout=0,1.5", *_QUICK],
            1,
            r"grid value \{'mlp__dropout': 1.5\}: The 'dropout' parameter",
        ),
        (
            ["search", "--grid", "activation=relu,bogus", *_QUICK],
            1,
            "grid value.*'bogus'",
        ),
        (
            ["search", "--grid", "epochs=1", "epochs=2", *_QUICK],
            1,
            "--grid names epochs twice",
        ),
        (
            [
                "search",
                "--grid",
                "learning-rate=1e30,1e31",
                "--optimizer",
                "sgd",
                "--cv",
                "2",
                *_QUICK,
            ],
            1,
            "NaN or infinite",
        ),
        (["train", *_QUICK, "--out", "{tmp}/file/o"], 1, "cannot write there"),
        (["train", *_QUICK, "--out", "/proc/sk-mnist-test/o"], 1, "cannot write there"),
        (["train", *_QUICK, "--out", "{tmp}/taken"], 1, "model.skops is a folder"),
    ],
)
def test_bad_options_give_one_clear_line_and_no_traceback(
    args, rc, message, tmp_path, mnist_path
):
    (tmp_path / "file").write_text("a file")
    (tmp_path / "taken" / "model.skops").mkdir(parents=True)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args and args[0] in ("train", "search"):
        args += ["--out", str(tmp_path / "out")]
    result = run(*args, env_data=mnist_path, check_rc=rc)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("sk-mnist")
    assert re.search(message, errors[0]), errors[0]
    # Nothing written, not even an empty output folder.
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_unreadable_image_and_foreign_model_are_refused(trained, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = run("predict", out, bad, check_rc=1)
    assert "not a readable image" in result.stderr
    fake = tmp_path / "model.skops"
    fake.write_bytes(b"\x80\x04K\x01.")  # a pickle
    good = tmp_path / "digit.png"
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(good)
    result = run("predict", fake, good, check_rc=1)
    assert "not a skops model file" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_is_available_everywhere():
    for command in ([], ["train"], ["search"], ["evaluate"], ["predict"]):
        result = run(*command, "--help")
        assert "usage: sk-mnist" in result.stdout
    assert "--hidden" in run("train", "--help").stdout


def test_train_defaults_are_the_estimators_own():
    # tests/test_classifier.py fits the default pipeline on all of MNIST and
    # asserts its accuracy; `sk-mnist train` with no options builds the same
    # classifier, with random_state=0.
    from sk_mnist import KerasMLPClassifier
    from sk_mnist.cli import _pipeline, build_parser

    args = build_parser().parse_args(["train"])
    cli = _pipeline(args, verbose=0)[-1].get_params()
    assert cli == KerasMLPClassifier(random_state=0).get_params()


def test_the_model_card_describes_the_model(trained):
    out, _ = trained
    card = " ".join((out / "README.md").read_text().split())
    metrics = json.loads((out / "metrics.json").read_text())
    for text in (
        f"| accuracy | {round(metrics['test_accuracy'], 4)} |",
        "| hidden_layer_sizes | [128] |",
        "The first 3000 of MNIST's 60,000 training images",
        "MNIST's 10000 test images",
        "`sk-mnist train --train-size 3000 --epochs 3 --hidden 128",
        "| macro avg |",
        "![Training curves](training_curves.png)",
        "![Confusion matrix](confusion_matrix.png)",
        "`sk_mnist._classifier.KerasMLPClassifier`",
    ):
        assert text in card, text
    for package in ("sk-mnist", "scikit-learn", "keras", metrics["backend"]):
        assert re.search(rf"\| {package} \| \d", card), package


def test_ctrl_c_during_train_marks_the_outputs_and_exits_130(tmp_path, mnist_path):
    out = tmp_path / "out"
    env = {**os.environ, "SK_MNIST_DATA": mnist_path}
    command = [
        *(sys.executable, "-m", "sk_mnist", "train", "--train-size", "2000"),
        *("--epochs", "200", "--hidden", "16", "--out", str(out)),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    for line in process.stdout:
        if line.startswith("Epoch 3/"):
            process.send_signal(signal.SIGINT)
            break
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert re.search(r"interrupted after \d+ epochs", stderr)
    assert "Traceback" not in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    assert 2 <= metrics["epochs_trained"] < 200
    assert "Training was interrupted after" in (out / "README.md").read_text()
    assert load(out / "model.skops")[-1].n_iter_ == metrics["epochs_trained"]


def test_export_to_onnx_and_predict_without_tensorflow_or_keras(
    trained, mnist_test, tmp_path
):
    out, _ = trained
    images, labels = mnist_test
    onnx_file = tmp_path / "model.onnx"
    result = run("export", out, "--format", "onnx", "--out", onnx_file)
    assert "Wrote" in result.stdout
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(images[i]).save(paths[-1])
    from_skops = run("predict", out, *paths).stdout
    code = textwrap.dedent(
        f"""
        import sys
        from sk_mnist.cli import main
        status = main(["predict", {str(onnx_file)!r}, *{[str(p) for p in paths]!r}])
        print("imported:", sorted({{"tensorflow", "keras", "jax"}} & set(sys.modules)))
        sys.exit(status)
        """
    )
    served = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert served.returncode == 0, served.stderr
    assert "imported: []" in served.stdout
    assert served.stdout.replace("imported: []\n", "") == from_skops
    for path, label in zip(paths, labels[:3], strict=True):
        assert f"{path}: {label} (probability " in served.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage", "not a readable ONNX model"),
        ("foreign", "expected an ONNX model of uint8 images"),
    ],
    ids=["corrupt", "foreign"],
)
def test_a_corrupt_or_foreign_onnx_file_is_one_line(
    tmp_path, mnist_test, content, message
):
    images, _ = mnist_test
    model = tmp_path / "model.onnx"
    if content == "foreign":
        from sk_mnist import KerasMLPClassifier
        from sk_mnist.onnx import to_onnx

        rng = np.random.default_rng(0)
        clf = KerasMLPClassifier(hidden_layer_sizes=(4,), epochs=1).fit(
            rng.random((40, 6)), np.arange(40) % 2
        )
        to_onnx(clf, model)
    else:
        model.write_bytes(content)
    digit = tmp_path / "digit.png"
    Image.fromarray(images[0]).save(digit)
    result = run("predict", model, digit, check_rc=1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
