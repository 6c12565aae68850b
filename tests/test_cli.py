"""The sk-mnist command, run as a subprocess on small real subsets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import onnx_graphs
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


@pytest.fixture
def run_here(capsys):
    """``sk-mnist ARGS`` in this process: no interpreter or TensorFlow start-up.

    For the many refusals that need no separate process; the environment
    the command sets up (its logging variables) is put back afterwards.
    """
    from sk_mnist.cli import main

    def run_in_process(*args, env_data=None, check_rc=0):
        saved = dict(os.environ)
        if env_data is not None:
            os.environ["SK_MNIST_DATA"] = env_data
        try:
            status = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code
        finally:
            os.environ.clear()
            os.environ.update(saved)
        out = capsys.readouterr()
        assert status == check_rc, (out.out[-2000:], out.err[-2000:])
        return types.SimpleNamespace(stdout=out.out, stderr=out.err)

    return run_in_process


def signal_when(command, env, prefix, signum, delay=0.0):
    """Run ``sk-mnist COMMAND``; send ``signum`` once stdout shows ``prefix``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sk_mnist", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    for line in process.stdout:
        if line.startswith(prefix):
            time.sleep(delay)
            process.send_signal(signum)
            break
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


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


def test_a_parallel_search_prints_no_backend_start_up_notes(tmp_path, mnist_path):
    # The worker processes import TensorFlow themselves; its C++ start-up
    # notes (oneDNN, CUDA drivers) must stay out of the command's output.
    result = run(
        *("search", "--grid", "hidden=8,16", "--cv", "2", "--train-size", "600"),
        *("--epochs", "1", "--n-jobs", "2", "--out", tmp_path / "s"),
        env_data=mnist_path,
    )
    assert result.stderr == ""
    assert len(pd.read_csv(tmp_path / "s" / "cv_results.csv")) == 2


_QUICK = ["--train-size", "300", "--epochs", "1", "--hidden", "16"]


@pytest.mark.parametrize(
    "args",
    [["train", "--activation", "r" * 100_000], ["train", "--epochs", "9" * 5000 + "x"]],
    ids=["estimator-check", "argparse"],
)
def test_an_error_line_quotes_a_long_value_shortened(args, tmp_path, run_here):
    # Before (outside tester's Y6): the whole value, 100,189 characters.
    result = run_here(*args, "--out", tmp_path / "out", check_rc=2)
    (line,) = result.stderr.splitlines()
    assert line.startswith("sk-mnist")
    assert len(line) < 1200
    assert "..." in line


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
            2,
            r"--dropout must be a float in the range \[0.0, 1.0\).*; got 1.5",
        ),
        (
            ["train", "--activation", "bogus", *_QUICK],
            2,
            ": --activation must be the name of a Keras activation.*'bogus'",
        ),
        (
            ["train", "--optimizer", "LossScaleOptimizer", *_QUICK],
            2,
            ": --optimizer must be the name of a Keras optimizer",
        ),
        (
            ["train", "--hidden", "2147483647", *_QUICK[:4]],
            2,
            r": --hidden=\(2147483647,\) makes a network of",
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
            2,
            r": --grid dropout=1.5: dropout must be .*; got 1.5 ",
        ),
        (
            ["search", "--grid", "learning-rate=0.1,1e400", *_QUICK],
            2,
            r": --grid learning-rate=inf: learning-rate must be .*; got inf ",
        ),
        (
            ["search", "--grid", "activation=relu,bogus", *_QUICK],
            2,
            ": --grid activation=bogus: activation must be .*'bogus'",
        ),
        (
            ["search", "--grid", "epochs=1", "epochs=2", *_QUICK],
            2,
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
        (
            ["train", "--activation", "threshold", *_QUICK],
            2,
            "maps each unit to one value.*'threshold'",
        ),
        (["train", "--activation", "glu", *_QUICK], 2, "'glu': it turns 2 units"),
        (
            ["train", "--momentum", "0.9", "--optimizer", "adam", *_QUICK],
            2,
            ": --momentum=0.9 is SGD's: it needs optimizer='sgd', got optimizer='adam'",
        ),
        (
            ["train", "--nesterovs-momentum", "maybe"],
            2,
            "--nesterovs-momentum: expected true or false, got 'maybe'",
        ),
        (
            ["search", "--grid", "nesterovs-momentum=true,perhaps"],
            2,
            "expected true or false, got 'perhaps'",
        ),
        (
            ["search", "--grid", "activation=relu,glu", *_QUICK],
            2,
            r": --grid activation=glu: activation .*'glu'",
        ),
        (
            ["search", "--grid", "epochs=1,2", "--cv", "1"],
            2,
            "--cv: expected an integer >= 2",
        ),
        (
            ["search", "--grid", "epochs=1,2", "--n-jobs", "0"],
            2,
            "--n-jobs: expected a positive",
        ),
        (["train", "--train-size", "3"], 2, "--train-size: expected an integer >= 10"),
        (
            ["train", "--train-size", "10000000"],
            2,
            "--train-size 10000000 is more than the 60000 training images there are",
        ),
        (
            ["train", "--alpha", "-1", *_QUICK],
            2,
            r"--alpha must be a float in the range \[0.0, inf\); got -1.0 \(see",
        ),
        (
            ["search", "--grid", "epochs=1,2", "--momentum", "nan", *_QUICK],
            2,
            "--momentum must be a float in the range",
        ),
        (
            ["train", *_QUICK, "--validation-fraction", "0.999999"],
            2,
            r"--validation-fraction 0.999999 holds out all \d+ images a fit trains",
        ),
        (
            [
                "search",
                *_QUICK,
                "--validation-fraction",
                "0.999",
                "--grid",
                "epochs=1,2",
            ],
            2,
            r"error: --validation-fraction 0.999 holds out all \d+ images a fit",
        ),
        (
            ["search", *_QUICK, "--grid", "validation-fraction=0.1,0.999", "--cv", "2"],
            2,
            r": --grid validation-fraction=0.999: validation-fraction 0.999 holds out",
        ),
        (
            ["search", "--grid", "epochs=1,2", "--train-size", "20", "--cv", "3"],
            2,
            "--train-size 20 is too small for --cv 3",
        ),
        (
            ["train", *_QUICK, "--out", ""],
            1,
            r"--out is empty \(an unset shell variable\?\)",
        ),
        (
            ["train", *_QUICK, "--out", "{tmp}/theirs"],
            1,
            "already holds README.md, which sk-mnist did not write",
        ),
        (
            ["train", *_QUICK, "--out", "{tmp}/fifo"],
            1,
            "metrics.json is not a regular file",
        ),
        (["train", *_QUICK, "--out", "{tmp}/file/o"], 1, "cannot write there"),
        (["train", *_QUICK, "--out", "/proc/sk-mnist-test/o"], 1, "cannot write there"),
        (["train", *_QUICK, "--out", "{tmp}/taken"], 1, "model.skops is a folder"),
    ],
)
def test_bad_options_give_one_clear_line_and_no_traceback(
    args, rc, message, tmp_path, mnist_path, run_here
):
    (tmp_path / "file").write_text("a file")
    (tmp_path / "taken" / "model.skops").mkdir(parents=True)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "README.md").write_text("the user's own")
    (tmp_path / "fifo").mkdir()
    (tmp_path / "fifo" / "model.skops").write_text("an earlier model")
    os.mkfifo(tmp_path / "fifo" / "metrics.json")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args and args[0] in ("train", "search"):
        args += ["--out", str(tmp_path / "out")]
    result = run_here(*args, env_data=mnist_path, check_rc=rc)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("sk-mnist")
    assert re.search(message, errors[0]), errors[0]
    # Nothing written, not even an empty output folder.
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "theirs" / "README.md").read_text() == "the user's own"


@pytest.mark.parametrize("where", ["/proc/sk-mnist-test.onnx", "{tmp}/no/such/m.onnx"])
def test_export_to_a_place_it_cannot_write_names_out(trained, tmp_path, where):
    out, _ = trained
    target = where.replace("{tmp}", str(tmp_path))
    result = run("export", out, "--out", target, check_rc=1)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [
        f"sk-mnist export: error: --out {target}: cannot write there "
        f"(No such file or directory)"
    ]


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
    from sk_mnist.cli import build_parser
    from sk_mnist.cli._common import pipeline

    args = build_parser().parse_args(["train"])
    cli = pipeline(args, verbose=0)[-1].get_params()
    assert cli == KerasMLPClassifier(random_state=0).get_params()


def test_the_model_card_names_a_cut_of_the_training_set_only_for_a_cut():
    from sk_mnist.cli._report import training_data

    assert training_data(60_000) == "MNIST's 60,000 training images"
    assert training_data(3000) == "The first 3000 of MNIST's 60,000 training images"


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
    returncode, _, stderr = signal_when(
        ["train", "--train-size", "2000", "--epochs", "200", "--hidden", "16"]
        + ["--out", str(out)],
        {"SK_MNIST_DATA": mnist_path},
        "Epoch 3/",
        signal.SIGINT,
    )
    assert returncode == 130, stderr
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
        ("foreign", "expected one input of uint8 images"),
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


# ------------------------------------------------- files save() itself wrote
@pytest.fixture(scope="module")
def odd_models(tmp_path_factory, mnist_test):
    """Files sk_mnist.save wrote that the command line must refuse in one line."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from sk_mnist import KerasMLPClassifier, MNISTFlattener, save

    images, labels = mnist_test
    folder = tmp_path_factory.mktemp("odd")
    save(MNISTFlattener().fit(images[:100]), folder / "flattener.skops")
    sqrt = make_pipeline(
        MNISTFlattener(),
        FunctionTransformer(np.sqrt),
        KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1, random_state=0),
    ).fit(images[:300], labels[:300])
    save(sqrt, folder / "sqrt.skops")
    digit = folder / "digit.png"
    Image.fromarray(images[0]).save(digit)
    return folder, digit


@pytest.mark.parametrize(
    ("command", "model", "message"),
    [
        ("evaluate", "flattener.skops", "holds a MNISTFlattener, not a classifier"),
        ("predict", "flattener.skops", "holds a MNISTFlattener, not a classifier"),
        ("export", "flattener.skops", "holds a MNISTFlattener, not a classifier"),
        ("export", "sqrt.skops", "skl2onnx cannot convert a step of this pipeline"),
    ],
)
def test_a_file_save_wrote_that_cannot_serve_is_one_line_and_writes_nothing(
    odd_models, mnist_path, command, model, message, run_here
):
    folder, digit = odd_models
    before = sorted(p.name for p in folder.iterdir())
    extra = {
        "evaluate": ["--data", mnist_path],
        "predict": [digit],
        "export": ["--out", folder / "out.onnx"],
    }[command]
    result = run_here(command, folder / model, *extra, check_rc=1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize("target", ["fifo", "/dev/null"])
def test_export_never_replaces_what_is_not_a_regular_file(
    trained, tmp_path, target, run_here
):
    out, _ = trained
    if target == "fifo":
        target = tmp_path / "model.onnx"
        os.mkfifo(target)
    result = run_here("export", out, "--out", target, check_rc=1)
    assert "is not a regular file" in result.stderr
    assert not os.path.isfile(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["model.onnx"] if target != "/dev/null" else []
    )


# ------------------------------------------------------------- interrupts
def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    ("signum", "delay"),
    [(signal.SIGINT, 0.0), (signal.SIGTERM, 0.6)],
)
def test_a_signal_while_train_writes_leaves_one_consistent_set(
    trained, tmp_path, mnist_path, signum, delay
):
    earlier, _ = trained
    out = tmp_path / "out"
    out.mkdir()
    for name, data in _snapshot(earlier).items():
        (out / name).write_bytes(data)
    old = _snapshot(out)
    returncode, _, stderr = signal_when(  # after the report come the files
        ["train", "--train-size", "500", "--epochs", "1", "--hidden", "8"]
        + ["--out", str(out)],
        {"SK_MNIST_DATA": mnist_path},
        "Test accuracy",
        signum,
        delay,
    )
    assert "Traceback" not in stderr
    new = _snapshot(out)
    assert [p.name for p in out.iterdir() if p.is_dir()] == []  # no staging left
    if returncode == 0:  # the signal came after the files were in place
        return
    assert returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    if new == old:
        assert "was left as it was" in stderr, stderr
    else:  # every file is this run's
        assert not set(new.items()) & set(old.items())
        metrics = json.loads(new["metrics.json"])
        assert metrics["params"]["hidden_layer_sizes"] == [8]
        assert load(out / "model.skops")[-1].hidden_layer_sizes == (8,)


def test_ctrl_c_during_search_stops_it_exits_130_and_writes_nothing(
    tmp_path, mnist_path
):
    out = tmp_path / "search"
    returncode, stdout, stderr = signal_when(
        ["search", "--grid", "hidden=16,32", "--cv", "2", "--train-size", "3000"]
        + ["--epochs", "200", "--out", str(out)],
        {"SK_MNIST_DATA": mnist_path},
        "Searching",
        signal.SIGINT,
        delay=3,
    )
    assert returncode == 130, stderr
    assert stderr.strip() == (
        "sk-mnist search: interrupted; the search was stopped; nothing was written"
    )
    assert "rank_test_score" not in stdout
    assert not out.exists()


@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0])
def test_ctrl_c_while_the_command_starts_is_no_traceback(tmp_path, delay):
    process = subprocess.Popen(
        [sys.executable, "-m", "sk_mnist", "train", "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SK_MNIST_DATA": str(tmp_path / "none.npz")},
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr
    # 1: it got to the missing data; -2 (death by SIGINT, which a shell
    # reports as 130 too): seen once under load, after the message was printed.
    assert process.returncode in (130, -signal.SIGINT, 1), stderr
    assert not (tmp_path / "o").exists()


# The swallowed KeyboardInterrupt is the point: Python reports it as unraisable.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_the_interpreter_swallowed_still_exits_130(monkeypatch, capsys):
    # JAX raises inside a garbage-collection callback, where Python prints and
    # drops the KeyboardInterrupt; the command must not then report success.
    import gc

    from sk_mnist import cli
    from sk_mnist.cli import evaluate

    def swallowing_run(args):
        def callback(phase, info):
            gc.callbacks.remove(callback)
            os.kill(os.getpid(), signal.SIGINT)  # delivered inside the callback

        gc.callbacks.append(callback)
        gc.collect()
        return 0

    monkeypatch.setattr(evaluate, "run", swallowing_run)
    monkeypatch.setattr(cli, "set_up_backend", lambda args, keras_needed: None)
    assert cli.main(["evaluate", "somewhere"]) == 130
    err = capsys.readouterr().err
    assert "sk-mnist evaluate: interrupted" in err
    # The interpreter's report of the swallowed interrupt is left out too.
    assert "Exception ignored" not in err
    assert "Traceback" not in err


# --------------------------------------------------------- what is printed
def test_labels_with_terminal_escapes_are_printed_escaped(tmp_path, mnist_test):
    from sklearn.pipeline import make_pipeline

    from sk_mnist import KerasMLPClassifier, MNISTFlattener, save
    from sk_mnist.onnx import to_onnx

    images, labels = mnist_test
    names = np.array(["zero\x1b[2J", "one\nforged: 7 (probability 1.000)"])
    pipe = make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0),
    ).fit(images[:400], names[(labels[:400] == 1).astype(int)])
    save(pipe, tmp_path / "m.skops")
    to_onnx(pipe, tmp_path / "m.onnx", images=True)
    digit = tmp_path / "digit.png"
    Image.fromarray(images[2]).save(digit)  # a 1
    for model in ("m.skops", "m.onnx"):
        out = run("predict", tmp_path / model, digit).stdout
        assert "\x1b" not in out
        assert out.count("\n") == 1, out
        assert re.search(r"digit.png: (zero\\x1b\[2J|one\\nforged: 7) ", out), out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (onnx_graphs.constant_of_shape, "ConstantOfShape is not one sk-mnist export"),
        (onnx_graphs.endless_loop, "ai.onnx.Loop is not one sk-mnist export writes"),
        (onnx_graphs.narrow_probabilities, "probabilities of shape (1, 3); expected"),
        (onnx_graphs.nan_probabilities, "are not finite rows in [0, 1] summing to 1"),
        (
            lambda: onnx_graphs.external_data("weights.bin"),
            "stored in another file (external data)",
        ),
    ],
    ids=["allocation-bomb", "endless-loop", "odd-shapes", "nan", "external-data"],
)
def test_a_hostile_onnx_file_is_one_line_and_prints_no_answer(
    tmp_path, mnist_test, make, message
):
    images, _ = mnist_test
    (tmp_path / "model.onnx").write_bytes(make())
    # A file an external-data model would read from the folder it is run in.
    np.full((784, 10), 7.0, np.float32).tofile(tmp_path / "weights.bin")
    Image.fromarray(images[0]).save(tmp_path / "digit.png")
    result = subprocess.run(
        [sys.executable, "-m", "sk_mnist", "predict", "model.onnx", "digit.png"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
