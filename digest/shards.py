"""Sending in several processes, one shard of the pending deliveries each, for when one
process's CPU (building and rendering) is the limit of a run and the machine has more cores.

The run's own process keeps the run lock, plans, and sends shard 1; each other shard is a
process started with `spawn` (SQLite connections must not cross a fork) that opens its own
store and transport. The connections and the rate of `[smtp]` are split between the
processes, so the relay sees what the config allows, whatever the number of workers. A
worker dies with the run's process (Linux's parent-death signal), so a killed run never
leaves one sending behind the lock's back; a worker that dies costs only the deliveries it
had claimed, which the next run resends like any crash's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from digest.config import Config, SmtpConfig
from digest.models import Topic
from digest.send import SendStats

EVENT_BATCH = 64  # finished deliveries a worker reports at once (for the progress bar)
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ShardWork:
    """What a worker process needs to send one shard: everything is rebuilt from these."""

    config: Config
    topics: dict[str, Topic]
    now: datetime
    shard: tuple[int, int]
    parent: int  # the run's pid: a worker that outlives it stops
    progress: bool  # report each finished delivery (a progress bar is shown)


@dataclass
class ShardResult:
    """What a worker sent, the seconds it spent building, and its own peak memory."""

    stats: SendStats = field(default_factory=SendStats)
    build_seconds: float = 0.0
    peak_mb: float = 0.0


def split_smtp(smtp: SmtpConfig, workers: int, index: int) -> SmtpConfig:
    """Shard `index`'s (0-based) share of the connections and of the rate, so that all
    the workers together open `concurrency` connections and keep `rate_per_second`."""
    base, extra = divmod(smtp.concurrency, workers)
    return replace(
        smtp,
        concurrency=max(1, base + (index < extra)),
        rate_per_second=smtp.rate_per_second / workers,
        workers=1,
    )


def shard_config(config: Config, workers: int, index: int) -> Config:
    """The config a shard's process sends with (see `split_smtp`)."""
    return replace(config, smtp=split_smtp(config.smtp, workers, index))


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM), 0.0 where /proc is not there."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def private_mb() -> float:
    """This process's memory that is its own (private pages, clean or dirty), 0.0 where
    /proc is not there: a forked child's peak RSS also counts the pages it still shares
    with its parent."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total / 1024


def die_with(parent: int) -> None:
    """Ask the kernel to kill this process when the run's process dies (Linux), and stop
    at once if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(3)


class Events:
    """A worker's side of the channel: finished deliveries in batches, then its result."""

    def __init__(self, channel: Any, index: int, progress: bool) -> None:
        self.channel = channel
        self.index = index
        self.progress = progress
        self._done: list[tuple[str, str]] = []

    def done(self, email: str, status: str) -> None:
        """A delivery ended (reported in batches when a progress bar wants them)."""
        if self.progress:
            self._done.append((email, str(status)))  # plain text across the process boundary
            if len(self._done) >= EVENT_BATCH:
                self.flush()

    def flush(self) -> None:
        """Report the deliveries ended since the last batch."""
        if self._done:
            self.channel.put(("done", self.index, self._done))
            self._done = []

    def finish(self, result: ShardResult) -> None:
        """Report the shard's outcome (the last message of a worker that did not crash)."""
        self.flush()
        self.channel.put(("result", self.index, result))


def start(
    target: Callable[[ShardWork, Events], ShardResult], works: list[ShardWork]
) -> tuple[list[BaseProcess], Any]:
    """Start one `spawn` process per shard, each running `target(work, events)`."""
    context = multiprocessing.get_context("spawn")
    channel = context.Queue()
    processes: list[BaseProcess] = [
        context.Process(target=_main, args=(target, work, channel, i), daemon=True)
        for i, work in enumerate(works)
    ]
    for process in processes:
        process.start()
    return processes, channel


def _main(
    target: Callable[[ShardWork, Events], ShardResult], work: ShardWork, channel: Any, index: int
) -> None:
    die_with(work.parent)
    events = Events(channel, index, work.progress)
    try:
        result = target(work, events)
    except BaseException as ex:  # reported as that shard's failure; the others go on
        channel.put(("error", index, f"{type(ex).__name__}: {ex}"))
        raise SystemExit(1) from None
    events.finish(result)


async def collect(
    processes: list[BaseProcess],
    channel: Any,
    works: list[ShardWork],
    on_done: Callable[[str, str], None] | None,
) -> list[ShardResult]:
    """Wait for every worker's result, passing finished deliveries to `on_done(email,
    status)`; a worker that dies or fails is one internal error naming its shard (its
    claimed deliveries are recovered by the next run)."""
    results: dict[int, ShardResult] = {}
    while len(results) < len(processes):
        message = await asyncio.to_thread(_next, channel, 0.25)
        if message is None:
            for i, process in enumerate(processes):
                if i not in results and not process.is_alive():
                    message = _next(channel, 0.5)  # what it put just before exiting
                    if message is None:
                        results[i] = _lost(works[i], f"stopped with exit code {process.exitcode}")
                    break
            if message is None:
                continue
        kind, index, body = message
        if kind == "done" and on_done is not None:
            for email, status in body:
                on_done(email, status)
        elif kind == "result":
            results[index] = body
        elif kind == "error":
            results[index] = _lost(works[index], body)
    for process in processes:
        process.join()
    return [results[i] for i in range(len(processes))]


def _next(channel: Any, timeout: float) -> Any:
    try:
        return channel.get(timeout=timeout)
    except queue.Empty:
        return None


def _lost(work: ShardWork, why: str) -> ShardResult:
    k, n = work.shard
    line = f"send worker for shard {k}/{n}: {why}; what it did not send waits for the next run"
    return ShardResult(SendStats(errors=1, failures=[line]))
