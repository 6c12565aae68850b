"""A Dask LocalCluster set up for fitting Keras networks in its workers."""

from __future__ import annotations

import logging
import os
from numbers import Integral

from sklearn.utils._param_validation import Interval, StrOptions, validate_params

#: The Keras backends sk-mnist is tested on.
BACKENDS = ("tensorflow", "jax")

#: Environment each worker process starts with. TensorFlow reads its thread
#: counts once, at import, so they must be in the environment before the
#: worker imports it; the C++ start-up notes would flood the worker logs.
_TF_THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@validate_params(
    {
        "tf_threads": [Interval(Integral, 1, None, closed="left"), None],
        "backend": [StrOptions(set(BACKENDS)), None],
    },
    prefer_skip_nested_validation=True,
)
def worker_environment(
    tf_threads: int | None = None, backend: str | None = None
) -> dict:
    """Environment variables for a process that will fit Keras networks.

    Parameters
    ----------
    tf_threads : int or None, default=None
        Threads TensorFlow may use within and across operations. ``None``
        leaves TensorFlow's default (all cores), the same as in the process
        that runs a serial search, so that both give identical scores.
        Fewer threads per worker avoid workers competing for cores, but
        floating-point sums then run in another order and scores can differ
        from a serial run with more threads in the last digits (see
        ``benchmarks/results/dask.md``).
    backend : str, default=None
        The Keras backend for the workers; ``None`` keeps the caller's
        ``KERAS_BACKEND`` (TensorFlow when unset).

    Returns
    -------
    dict of str to str
        To pass as ``env`` to a ``distributed.Nanny`` (``LocalCluster`` passes
        it on), or to set in a batch job before the worker starts.

    See Also
    --------
    local_cluster : A LocalCluster started with this environment.

    Examples
    --------
    >>> from sk_mnist.dask import worker_environment
    >>> env = worker_environment(tf_threads=4, backend="jax")
    >>> env["TF_NUM_INTRAOP_THREADS"], env["KERAS_BACKEND"]
    ('4', 'jax')
    """
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    if tf_threads is not None:
        env.update({name: str(tf_threads) for name in _TF_THREAD_VARIABLES})
    backend = backend or os.environ.get("KERAS_BACKEND")
    if backend:
        env["KERAS_BACKEND"] = backend
    return env


def local_cluster(
    n_workers: int = 2,
    *,
    tf_threads: int | None = None,
    memory_limit: str = "3GiB",
    backend: str | None = None,
    **kwargs,
):
    """Start a ``distributed.LocalCluster`` whose workers can fit Keras networks.

    One process per worker with one Dask thread each (TensorFlow already uses
    every core it is given for one fit), TensorFlow's threads set through the
    environment before import when ``tf_threads`` is given, and a
    memory limit with room for TensorFlow, whose worker holds far more than
    the network once it has fitted one (too low a limit makes the nanny pause
    and restart workers).

    Parameters
    ----------
    n_workers : int, default=2
        Worker processes.
    tf_threads : int or None, default=None
        TensorFlow threads per worker, see :func:`worker_environment`.
    memory_limit : str, default="3GiB"
        Memory limit of each worker.
    backend : str, default=None
        The Keras backend of the workers.
    **kwargs
        Passed on to ``distributed.LocalCluster``.

    Returns
    -------
    distributed.LocalCluster
        Started; connect with ``distributed.Client(cluster)``.

    See Also
    --------
    worker_environment : The environment the workers start with.

    Examples
    --------
    >>> import joblib
    >>> from distributed import Client
    >>> from sk_mnist.dask import local_cluster
    >>> # In a script, start the cluster under `if __name__ == "__main__":`,
    >>> # since its worker processes import the main module again.
    >>> with local_cluster(2) as cluster, Client(cluster):  # doctest: +SKIP
    ...     with joblib.parallel_backend("dask", scatter=[X, y]):
    ...         search.fit(X, y)
    """
    try:
        from distributed import LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "local_cluster needs Dask's distributed scheduler: "
            'pip install "sk-mnist[dask]".'
        ) from exc
    kwargs.setdefault("dashboard_address", None)
    kwargs.setdefault("silence_logs", logging.ERROR)
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit,
        env=worker_environment(tf_threads, backend),
        **kwargs,
    )
