"""``sk-mnist evaluate``: re-evaluate a saved model on the test set."""

from __future__ import annotations

from . import _report
from ._common import add_data_options, add_model_argument, load_classifier, load_data


def add_parser(commands):
    parser = commands.add_parser(
        "evaluate", help="re-evaluate a saved model on the test set"
    )
    add_model_argument(parser, "a folder written by train/search, or a model file")
    add_data_options(parser)


def run(args):
    pipe = load_classifier(args.model)
    X_test, y_test = load_data(args, "test")
    _report.report(pipe, X_test, y_test)
    return 0
