"""``sk-mnist search``: a grid search with cross-validation."""

from __future__ import annotations

import argparse
import math
import sys
import warnings

from . import _progress, _report
from ._common import (
    MODEL_FILE,
    MODEL_OPTIONS,
    READERS,
    UsageError,
    add_data_options,
    add_model_options,
    at_least,
    backend,
    check_constraints,
    check_estimator,
    check_holdout,
    grid_origin,
    load_data,
    n_jobs,
    pipeline,
    write_text,
)
from ._outputs import OutputFolder

OUTPUTS = [MODEL_FILE, "cv_results.csv", "search_results.png"]


def add_parser(commands):
    parser = commands.add_parser("search", help="grid search with cross-validation")
    add_data_options(parser)
    add_model_options(parser, out="sk-mnist-search")
    parser.add_argument(
        "--grid",
        type=_grid_entry,
        nargs="+",
        required=True,
        metavar="KEY=VALUES",
        help="e.g. hidden=256,512,512x512 dropout=0,0.2",
    )
    parser.add_argument("--cv", type=at_least(2), default=3, help="folds (default: 3)")
    parser.add_argument(
        "--n-jobs",
        type=n_jobs,
        default=1,
        help="parallel fits, -1 for one per CPU (default: 1)",
    )


def _grid_entry(text):
    """'hidden=256,512x512' -> ('hidden_layer_sizes', [(256,), (512, 512)])."""
    key, sep, values = text.partition("=")
    options = {option.lstrip("-"): name for name, (option, *_) in MODEL_OPTIONS.items()}
    name = options.get(key.strip())
    if not sep or not values or name is None:
        raise argparse.ArgumentTypeError(
            f"grid entries are KEY=V1,V2,... with KEY one of {sorted(options)}; "
            f"got {text!r}"
        )
    read = READERS[MODEL_OPTIONS[name][1]]
    try:
        return name, [read(value.strip()) for value in values.split(",")]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise argparse.ArgumentTypeError(f"in {text!r}: {exc}") from None


def check(args):
    """The options and grid values' ranges, before the backend loads."""
    from sklearn.model_selection import ParameterGrid

    grid = _grid(args)
    pipe = pipeline(args, verbose=0, checked=False)
    check_constraints(pipe[-1])
    for candidate in ParameterGrid(grid):
        check_constraints(pipe.set_params(**candidate)[-1], grid_origin(candidate))
    if args.train_size is not None and args.train_size < 10 * args.cv:
        raise UsageError(
            f"--train-size {args.train_size} is too small for --cv {args.cv}: each "
            f"of the {args.cv} folds needs every digit (at least {10 * args.cv} "
            f"images)"
        )


def run(args):
    from sklearn.model_selection import GridSearchCV, ParameterGrid

    from ..exceptions import FitInterruptedWarning

    grid = _grid(args)
    pipe = pipeline(args, verbose=0)
    for candidate in ParameterGrid(grid):
        check_estimator(pipe.set_params(**candidate)[-1], grid_origin(candidate))
    out = OutputFolder(args.out, OUTPUTS)
    X, y = load_data(args, "train")
    # Each fit of the search trains on the folds but one; the fraction is the
    # option's unless the grid sets it.
    fit_rows = len(X) - math.ceil(len(X) / args.cv)
    for candidate in ParameterGrid(grid):
        from_grid = "mlp__validation_fraction" in candidate
        check_holdout(
            pipe.set_params(**candidate)[-1],
            fit_rows,
            grid_origin(candidate) if from_grid else None,
        )
    search = GridSearchCV(
        pipeline(args, verbose=0),
        grid,
        cv=args.cv,
        n_jobs=args.n_jobs,
        error_score="raise",
    )
    if sys.stdout.isatty():
        # The search, each fit and each epoch in one view, also from the
        # worker processes of --n-jobs; nothing of it off a terminal.
        _progress.show(search)
    print(
        f"Searching {len(ParameterGrid(grid))} candidates x {args.cv} folds on "
        f"{len(X)} images (backend: {backend()})",
        flush=True,
    )
    with warnings.catch_warnings():
        # Ctrl-C stops the running fit at its next batch with this warning;
        # as an error, it ends the search instead of letting the search score
        # a half-trained fit and go on.
        warnings.simplefilter("error", FitInterruptedWarning)
        try:
            search.fit(X, y)
        except FitInterruptedWarning:
            raise KeyboardInterrupt(
                "the search was stopped; nothing was written"
            ) from None
    with out.writing() as folder:
        table = _ranked_table(search.cv_results_)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        X_test, y_test = load_data(args, "test")
        test_score = search.score(X_test, y_test)
        _report.save_model(search.best_estimator_, folder)
        write_text(
            folder / "cv_results.csv", _frame(search.cv_results_).to_csv(index=False)
        )
        _report.save_search_plot(search, grid, folder)
    print(f"Best: {search.best_params_} (mean CV accuracy {search.best_score_:.4f})")
    print(f"Best pipeline's test accuracy: {test_score:.4f}")
    print(f"Wrote {', '.join(OUTPUTS)} to {out.path}")
    return 0


def _grid(args):
    grid = {}
    for name, values in args.grid:
        if f"mlp__{name}" in grid:
            raise UsageError(f"--grid names {name} twice")
        grid[f"mlp__{name}"] = values
    return grid


def _frame(results):
    import pandas as pd

    return pd.DataFrame(results)


def _ranked_table(results):
    columns = [
        "rank_test_score",
        "mean_test_score",
        "std_test_score",
        "mean_fit_time",
        "params",
    ]
    table = _frame(results)[columns].sort_values("rank_test_score")
    table["params"] = table["params"].map(
        lambda p: ", ".join(f"{k.removeprefix('mlp__')}={v}" for k, v in p.items())
    )
    return table
