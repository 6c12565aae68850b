"""An exported sk-mnist model, checked and run by onnxruntime alone.

``sk-mnist predict MODEL.onnx`` and ``sk-mnist serve`` read models that
anybody may hand them. :class:`ServedModel` has its graph checked first
(``_graph.py``: its structure, operators, shapes and bounds, before onnx or
onnxruntime reads its tensors, then the shapes onnxruntime makes) against
what :func:`sk_mnist.onnx.to_onnx` writes. The model then runs on one image
and on three, and must answer probabilities. Every run is bounded in time by
the model's watchdog, and its answers are checked before anybody sees them.
A server awaits :meth:`ServedModel.apredict`, which runs onnxruntime in the
model's own thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time

import numpy as np

from .._utils._files import read_bounded
from ..exceptions import ModelError
from ._graph import _OUTPUTS, _brief, _session, check_model, probe_batches
from ._options import ServeOptions, _finite, _in_range, max_threads

#: Seconds a model call may take, as ``sk-mnist serve --timeout`` says.
_TIMEOUT = ServeOptions().timeout

#: The largest model file read: far beyond any MNIST network.
MAX_MODEL_BYTES = 1024**3


class ServedModel:
    """A model written by ``sk-mnist export``, run by onnxruntime.

    Parameters
    ----------
    data : bytes
        The ONNX file's content.
    origin : str, default="the model"
        Named in error messages.
    timeout : float, default=10.0
        Seconds one :meth:`predict` or :meth:`apredict` call may take (for
        :meth:`apredict`, waiting for its turn included) before it is stopped;
        the default is ``sk-mnist serve``'s.
    threads : int, default=1
        onnxruntime's threads for one call, 1 to four per core. One serves
        small requests best: a server's event loop and its other processes
        keep the other cores, and the threads never spin waiting for work.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        The labels, in the order of the probabilities' columns.
    image_shape : tuple of (int, int)
        Height and width of the uint8 images the model reads.
    input_name : str
        The name of the model's input.
    bytes_per_image : int
        The bytes of all the tensors of one image, as if all were alive at
        once: a bound on what each image of a batch costs.

    Raises
    ------
    ModelError
        The file is not an ONNX model, or not one that sk-mnist exports
        (named in one line): a graph of other operators, sizes or shapes
        than export writes, tensors or products that outgrow its image and
        weights, shapes onnxruntime makes otherwise than onnx infers, or
        answers on a blank image and on noise that are not probabilities
        over its classes.
    ValueError
        ``timeout`` or ``threads`` out of bounds, named.
    """

    def __init__(
        self, data: bytes, *, origin: str = "the model", timeout=_TIMEOUT, threads=1
    ):
        import onnxruntime

        _check_options(timeout, threads)
        self.origin, self.timeout = origin, float(timeout)
        self._watchdog = _Watchdog()
        # apredict's calls run in one thread of this model's own, in turn.
        # Off the event loop, so that a server answers its other routes while
        # a batch runs; one thread, not Starlette's shared pool of 40, so that
        # one run's tensors are alive at a time (memory is bounded by one
        # batch, and `threads` is what a call uses), while the batcher combines
        # the requests that arrive meanwhile. The standard library's
        # single-worker executor is that thread and its queue, and asyncio
        # awaits its futures; it starts the thread on the first call only.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sk-mnist-onnx"
        )
        self._closed = False
        try:
            # The parsed graph and its tensors are gone when the checks
            # return, before onnxruntime copies them again.
            self.classes, self.bytes_per_image, self.input_name, self.image_shape = (
                check_model(data, origin, timeout=self.timeout, watchdog=self._watchdog)
            )
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = _session(data, options, origin)
            self._probe()
        except ModelError:
            self.close()  # the watchdog's thread
            raise

    @classmethod
    def from_file(cls, path, *, timeout=_TIMEOUT, threads=1) -> ServedModel:
        """Read and check the ONNX file ``path``.

        Raises
        ------
        ModelError
            Not a model ``sk-mnist export`` writes.
        OSError, ValueError
            No such file, a folder, a FIFO or device, or over 1 GiB.
        """
        _check_options(timeout, threads)  # before reading up to 1 GiB
        data = read_bounded(path, MAX_MODEL_BYTES, what="ONNX model")
        return cls(data, origin=str(path), timeout=timeout, threads=threads)

    def predict(self, images: np.ndarray):
        """Labels and probabilities of uint8 ``images`` of :attr:`image_shape`.

        Runs in the calling thread; a server uses :meth:`apredict`.

        Returns
        -------
        labels : ndarray of shape (n,)
        probabilities : ndarray of shape (n, n_classes), float32

        Raises
        ------
        ModelError
            The run failed, took longer than ``timeout`` or gave answers that
            are not one label and one probability row per image; or the
            model is closed.
        """
        return self._run(images)

    async def apredict(self, images: np.ndarray):
        """:meth:`predict` in this model's own thread, awaited.

        Calls run one at a time, in the order they came; ``timeout`` counts
        from the call, so a call that waited its whole time in line does not
        run at all. Cancelling the awaiting task drops a call that has not
        started.
        """
        deadline = time.monotonic() + self.timeout
        try:
            future = self._executor.submit(self._run, images, deadline)
        except RuntimeError:  # the executor is shut down
            raise self._closed_error() from None
        return await asyncio.wrap_future(future)

    def close(self):
        """Stop the run in progress, refuse the calls waiting, end the thread.

        Every later call raises :class:`ModelError`. Returns once the
        model's thread has ended.
        """
        self._closed = True
        self._watchdog.terminate_all()
        self._executor.shutdown(wait=True)
        self._watchdog.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _probe(self):
        """Run the model on one image and on three, and check its answers.

        A model with NaN weights or scores where probabilities belong would
        otherwise start, and fail every request; one whose answers are
        right for one image only would fail every batch.
        """
        for what, images in probe_batches(self.image_shape):
            try:
                self.predict(images)
            except ModelError as exc:
                raise ModelError(
                    f"{str(exc).rstrip('.')} (tried at load, on {what}); "
                    f"refusing to serve it."
                ) from None

    def _closed_error(self):
        return ModelError(f"{self.origin}: the model is closed")

    def _run(self, images, deadline=None):
        """Run the session; ``deadline`` ends an awaited call, waiting included."""
        import onnxruntime

        if self._closed:
            raise self._closed_error()
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        elif time.monotonic() >= deadline:
            raise ModelError(
                f"{self.origin}: the model was busy for the call's {self.timeout:g} "
                f"s; it did not run"
            )
        images = np.ascontiguousarray(images, dtype=np.uint8)
        options = onnxruntime.RunOptions()
        try:
            with self._watchdog.watching(options, deadline):
                labels, proba = self._session.run(
                    _OUTPUTS, {self.input_name: images}, options
                )
        except Exception as exc:  # onnxruntime's errors subclass Exception only
            if self._closed:
                raise self._closed_error() from None
            raise ModelError(
                f"{self.origin}: the model stopped after {self.timeout:g} s"
                if options.terminate
                else f"{self.origin}: the model failed to run ({_brief(exc)})"
            ) from None
        self._check_answers(len(images), labels, proba)
        return labels, proba

    def _check_answers(self, n, labels, proba):
        k = len(self.classes)
        if (
            not isinstance(labels, np.ndarray)
            or labels.shape != (n,)
            or not isinstance(proba, np.ndarray)
            or proba.shape != (n, k)
            or proba.dtype.kind != "f"
        ):
            raise ModelError(
                f"{self.origin}: the model answered {n} images with labels of shape "
                f"{getattr(labels, 'shape', None)} and probabilities of shape "
                f"{getattr(proba, 'shape', None)}; expected ({n},) and ({n}, {k})."
            )
        # NaN fails every comparison, and an infinity makes its row's sum one.
        if not (proba.min() >= 0 and np.abs(proba.sum(axis=1) - 1).max() <= 1e-3):
            raise ModelError(
                f"{self.origin}: the model's probabilities are not finite rows "
                f"in [0, 1] summing to 1."
            )
        if not np.array_equal(labels, self.classes[proba.argmax(axis=1)]):
            raise ModelError(
                f"{self.origin}: the model's labels are not the classes of its "
                f"highest probabilities."
            )


def _check_options(timeout, threads):
    _finite("timeout", timeout, 0.0, 3600.0, low_open=True)
    _in_range("threads", threads, 1, max_threads())


#: How long the watchdog's thread waits for a run before it ends.
_WATCHDOG_IDLE_SECONDS = 10.0


class _Watchdog:
    """Stops an onnxruntime run that is still going at its deadline.

    onnxruntime ends a run whose ``RunOptions.terminate`` is set from another
    thread; one thread per model sets it, so that a run costs no new thread
    (a ``threading.Timer`` per call would cost more than a small run).
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._running = {}  # id -> (deadline, options)
        self._thread = None
        # Each watching thread runs while the generation it was started for
        # is current: close() moves it on, so a thread that close() ended is
        # not kept going by a run that started another one meanwhile.
        self._generation = 0

    @contextlib.contextmanager
    def watching(self, options, deadline):
        key = id(options)
        with self._condition:
            if self._thread is None:
                self._generation += 1
                self._thread = threading.Thread(
                    target=self._watch,
                    args=(self._generation,),
                    name="sk-mnist-onnx-watchdog",
                    daemon=True,
                )
                self._thread.start()
            self._running[key] = (deadline, options)
            self._condition.notify_all()
        try:
            yield
        finally:
            with self._condition:
                self._running.pop(key, None)
                self._condition.notify_all()  # to wait idle, not for this deadline

    def terminate_all(self):
        """Stop every run in progress now."""
        with self._condition:
            for _, options in self._running.values():
                options.terminate = True
            self._running.clear()

    def close(self):
        """End the watching thread (a later run starts it again)."""
        with self._condition:
            thread, self._thread = self._thread, None
            self._generation += 1
            self._condition.notify_all()
        if thread is not None:
            thread.join()

    def _watch(self, generation):
        with self._condition:
            while self._generation == generation:
                if not self._running:
                    # An idle thread ends (the next run starts another), so a
                    # model dropped without close() leaves no thread behind.
                    if not self._condition.wait(_WATCHDOG_IDLE_SECONDS) and (
                        not self._running and self._generation == generation
                    ):
                        self._thread = None
                        return
                    continue
                now = time.monotonic()
                for key, (deadline, options) in list(self._running.items()):
                    if deadline <= now:
                        options.terminate = True
                        del self._running[key]
                soonest = min((d for d, _ in self._running.values()), default=None)
                self._condition.wait(None if soonest is None else soonest - now)
