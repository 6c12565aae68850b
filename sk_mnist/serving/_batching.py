"""Adaptive batching: requests that arrive together share one onnxruntime call.

A request's images wait at most ``max_latency`` seconds for others; as soon
as ``max_batch_size`` images are waiting, or the wait is over, they run as
one batch and each request gets its own rows back. Nothing in Starlette or
onnxruntime does this (model servers such as MLServer and Triton each carry
their own), and it is a small asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np


class AdaptiveBatcher:
    """Combine concurrent ``predict`` calls into batches.

    Parameters
    ----------
    predict : callable
        ``predict(images) -> (labels, probabilities)`` for a batch.
    max_batch_size : int
        A batch stops collecting requests once it holds this many images
        (the request that reaches it is kept whole).
    max_latency : float
        Longest a request waits for others, in seconds.
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

    async def start(self):
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def predict(self, images):
        """The labels and probabilities of ``images``, computed in a batch."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((images, future))
        return await future

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self._queue.get()]
            size = len(waiting[0][0])
            deadline = loop.time() + self.max_latency
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
                waiting.append(item)
                size += len(item[0])
            self._run_batch(waiting)

    def _run_batch(self, waiting):
        images = np.concatenate([item[0] for item in waiting])
        self._on_batch(len(images))
        try:
            labels, proba = self._predict(images)
        except Exception as exc:  # handed to every waiting request
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for rows, future in waiting:
            end = start + len(rows)
            if not future.done():  # a client that went away
                future.set_result((labels[start:end], proba[start:end]))
            start = end
