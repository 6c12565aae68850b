"""AdaptiveBatcher: concurrent requests combined into batches, answered as alone."""

from __future__ import annotations

import asyncio

import numpy as np
import onnx_graphs
import pytest

from sk_mnist.serving import ServedModel
from sk_mnist.serving._batching import AdaptiveBatcher


@pytest.fixture(scope="module")
def model():
    with ServedModel(onnx_graphs.model(*onnx_graphs.head(scale=0.01, seed=0))) as m:
        yield m


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)


class _Gated:
    """``model.apredict``, recording each batch; the first is held until released."""

    def __init__(self, model):
        self.model, self.calls, self.release = model, [], asyncio.Event()

    async def __call__(self, images):
        self.calls.append(len(images))
        if len(self.calls) == 1:
            await self.release.wait()
        return await self.model.apredict(images)


async def _settle():
    for _ in range(20):
        await asyncio.sleep(0)


def test_with_no_latency_a_lone_request_runs_at_once_and_the_rest_join_the_next(
    model, images
):
    async def main():
        predict = _Gated(model)
        batcher = AdaptiveBatcher(predict, max_batch_size=64, max_latency=0)
        await batcher.start()
        first = asyncio.create_task(batcher.predict(images[:1]))
        await _settle()
        calls_alone = list(predict.calls)  # no timer: the lone request runs
        later = [
            asyncio.create_task(batcher.predict(images[i : i + 3]))
            for i in range(1, 13, 3)
        ]
        await _settle()
        calls_while_running = list(predict.calls)
        predict.release.set()
        answers = await asyncio.gather(first, *later)
        await batcher.stop()
        return calls_alone, calls_while_running, predict.calls, answers

    alone, running, calls, answers = asyncio.run(main())
    assert alone == [1]
    assert running == [1]  # one batch at a time
    assert calls == [1, 12]  # the four that came meanwhile, in one batch
    sequential = [model.predict(images[:1])] + [
        model.predict(images[i : i + 3]) for i in range(1, 13, 3)
    ]
    for (labels, proba), (labels1, proba1) in zip(answers, sequential, strict=True):
        np.testing.assert_array_equal(labels, labels1)
        np.testing.assert_array_equal(proba, proba1)


def test_a_batch_stops_at_its_size_and_skips_requests_whose_clients_left(model, images):
    async def main():
        predict = _Gated(model)
        batcher = AdaptiveBatcher(predict, max_batch_size=5, max_latency=0)
        await batcher.start()
        first = asyncio.create_task(batcher.predict(images[:1]))
        await _settle()
        later = [
            asyncio.create_task(batcher.predict(images[i : i + 2]))
            for i in range(1, 11, 2)
        ]
        await _settle()
        later[1].cancel()  # its client went away while it waited
        await _settle()
        predict.release.set()
        answers = await asyncio.gather(first, *later, return_exceptions=True)
        await batcher.stop()
        return predict.calls, answers

    calls, answers = asyncio.run(main())
    # The four requests left are two images each: two make a batch of 4, and
    # the third would reach 5 and is kept whole (6); the one gone counts none.
    assert calls == [1, 6, 2]
    assert isinstance(answers[2], asyncio.CancelledError)
    for i, answer in zip(range(1, 11, 2), answers[1:], strict=True):
        if i != 3:
            np.testing.assert_array_equal(
                answer[1], model.predict(images[i : i + 2])[1]
            )


def test_stop_cancels_the_requests_still_waiting(model, images):
    async def main():
        predict = _Gated(model)
        batcher = AdaptiveBatcher(predict, max_batch_size=64, max_latency=0)
        await batcher.start()
        waiting = [asyncio.create_task(batcher.predict(images[:2])) for _ in range(3)]
        await _settle()
        await batcher.stop()
        return await asyncio.gather(*waiting, return_exceptions=True)

    answers = asyncio.run(main())
    assert all(isinstance(a, asyncio.CancelledError) for a in answers)
