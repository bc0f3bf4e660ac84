"""The one thread that owns a database connection of the web app, and the calls made on it
from the event loop. No routes, no pages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from digest.store import Store

P = ParamSpec("P")
T = TypeVar("T")


class StoreThread:
    """The web app's one database connection, opened and used by one thread of its own.

    Why a thread: a store call on the event loop stalls every request for as long as SQLite
    waits (up to the busy timeout while the daily job holds the write lock). Why one: the Store
    opens its connection with sqlite3's default `check_same_thread`, so only its creator thread
    may use or close it; SQLite admits one writer at a time anyway; and a call on an open
    connection costs ~0.02 ms where opening one per request costs ~1.9 ms and a `BEGIN
    IMMEDIATE` (the migration check). The event loop only awaits; requests that touch no
    database (the form, the stylesheet, /healthz) never wait for one that does."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-store")
        self._store: Store | None = None

    async def call(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(store, *args, **kwargs)` in the store's thread, awaited without blocking.

        Raises:
            StoreError: the database cannot be opened or written (the next call tries again).
        """

        def job() -> T:
            if self._store is None:
                self._store = Store(self.path)
            return fn(self._store, *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def aclose(self) -> None:
        """Close the connection in the thread that opened it, then end that thread."""

        def close() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=False)
