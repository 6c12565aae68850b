"""One memory budget for the whole server: the bytes all requests may hold.

A request is charged for what it makes the server hold: its body as each
chunk arrives, the working memory of parsing it, an image's decoded size
before the image is decoded. While the bytes of all requests in flight are
over the budget, a request waits briefly for others to finish; then it is
refused with 503 and ``Retry-After``. Starlette and uvicorn bound neither
(Starlette's only limit is its thread pool, uvicorn's the connections), so
this is a small asyncio accounting object.
"""

from __future__ import annotations

import asyncio
import contextlib

#: How long a request over the budget waits for others before its 503.
WAIT_SECONDS = 1.0
#: Seconds the 503 asks a client to wait before trying again.
RETRY_AFTER_SECONDS = 1


class OverBudget(Exception):
    """A request the budget cannot hold: 503 (busy) or 413 (never fits)."""

    def __init__(self, message, status=503):
        super().__init__(message)
        self.status = status


class MemoryBudget:
    """Bytes that all requests in flight may hold at once.

    Parameters
    ----------
    limit : int
        The budget, in bytes.
    wait : float, default=1.0
        Seconds a request over the budget waits for others to release bytes.

    Attributes
    ----------
    in_use : int
        Bytes charged now.
    peak : int
        The most bytes charged at once so far (never above ``limit``).
    """

    def __init__(self, limit: int, *, wait: float = WAIT_SECONDS):
        self.limit, self.wait = limit, wait
        self.in_use = self.peak = 0
        self._waiters: list[asyncio.Future] = []

    async def acquire(self, n: int):
        """Charge ``n`` bytes, waiting up to :attr:`wait` seconds for room.

        Raises
        ------
        OverBudget
            503 when there is no room in time; 413 when ``n`` alone is over
            the whole budget.
        """
        if n > self.limit:
            raise OverBudget(
                f"the request needs {n} bytes of memory, more than this server's "
                f"memory budget of {self.limit} bytes for all requests "
                f"(--memory-budget-bytes)",
                status=413,
            )
        if self.in_use + n > self.limit:
            await self._wait_for_room(n)
        self.in_use += n
        self.peak = max(self.peak, self.in_use)

    def release(self, n: int):
        """Give ``n`` charged bytes back and wake the requests waiting."""
        self.in_use -= n
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_for_room(self, n):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while self.in_use + n > self.limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise OverBudget(
                    f"the server is busy: requests in flight hold {self.in_use} of "
                    f"its {self.limit} bytes of memory budget and this one needs "
                    f"{n} more; retry in {RETRY_AFTER_SECONDS} s"
                )
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    @contextlib.asynccontextmanager
    async def account(self):
        """A request's account: what it charges is released when it ends."""
        account = Account(self)
        try:
            yield account
        finally:
            account.close()


class Account:
    """The bytes one request holds in a :class:`MemoryBudget`."""

    def __init__(self, budget: MemoryBudget):
        self.budget, self.held = budget, 0

    async def charge(self, n: int):
        """Charge ``n`` more bytes (see :meth:`MemoryBudget.acquire`).

        Raises
        ------
        OverBudget
            413 at once when what this request holds and ``n`` are over the
            whole budget (no wait would make room); else as ``acquire``.
        """
        if self.held + n > self.budget.limit:
            raise OverBudget(
                f"the request needs {self.held + n} bytes of memory, more than "
                f"this server's memory budget of {self.budget.limit} bytes for all "
                f"requests (--memory-budget-bytes); send large batches as binary "
                f"tensors or in smaller requests",
                status=413,
            )
        await self.budget.acquire(n)
        self.held += n

    def refund(self, n: int):
        """Give back ``n`` of the bytes charged, once they are freed."""
        n = min(n, self.held)
        self.held -= n
        self.budget.release(n)

    def close(self):
        if self.held:
            self.refund(self.held)
