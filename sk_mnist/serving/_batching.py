"""Adaptive batching: requests that arrive together share one onnxruntime call.

One batch runs at a time. A request waits at most ``max_latency`` seconds
from its arrival for others; as soon as ``max_batch_size`` images are
waiting, or the first request's wait is over, they run as one batch and each
request gets its own rows back. The requests that arrive while a batch runs
make the next one, so with ``max_latency=0`` batching is opportunistic: a
request that is alone runs at once, and nothing ever waits on a timer.
Nothing in Starlette or onnxruntime does this (model servers such as
MLServer and Triton each carry their own), and it is a small asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np


class AdaptiveBatcher:
    """Combine concurrent ``predict`` calls into batches.

    Parameters
    ----------
    predict : coroutine function
        ``await predict(images) -> (labels, probabilities)`` for a batch, such
        as :meth:`ServedModel.apredict`, which runs off the event loop.
    max_batch_size : int
        A batch stops collecting requests once it holds this many images
        (the request that reaches it is kept whole).
    max_latency : float
        Longest a request waits for others, in seconds, counted from its
        arrival; 0 combines only the requests that arrived while the
        previous batch ran.
    on_batch : callable, default=None
        Called with the number of images of each call (for metrics).
    """

    def __init__(self, predict, *, max_batch_size, max_latency, on_batch=None):
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency
        self._on_batch = on_batch or (lambda n: None)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._batch = []  # the requests of the batch running

    async def start(self):
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self):
        """End the loop; the requests it still held are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        left = list(self._batch)
        while self._queue is not None and not self._queue.empty():
            left.append(self._queue.get_nowait())
        for _, future, _ in left:
            future.cancel()

    async def predict(self, images):
        """The labels and probabilities of ``images``, computed in a batch."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put_nowait((images, future, loop.time()))
        return await future

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            self._batch = waiting = [await self._queue.get()]
            if waiting[0][1].done():  # its client went away while it waited
                continue
            size = len(waiting[0][0])
            deadline = waiting[0][2] + self.max_latency
            while size < self.max_batch_size:
                if self._queue.empty():
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), timeout)
                    except TimeoutError:
                        break
                else:  # what already waits is taken without a timer
                    item = self._queue.get_nowait()
                if not item[1].done():
                    waiting.append(item)
                    size += len(item[0])
            await self._run_batch(waiting)
            self._batch = []

    async def _run_batch(self, waiting):
        images = np.concatenate([item[0] for item in waiting])
        self._on_batch(len(images))
        try:
            labels, proba = await self._predict(images)
        except Exception as exc:  # handed to every waiting request
            for _, future, _ in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for rows, future, _ in waiting:
            end = start + len(rows)
            if not future.done():  # a client that went away
                future.set_result((labels[start:end], proba[start:end]))
            start = end
