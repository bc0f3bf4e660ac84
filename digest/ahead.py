"""Messages built in a second process while the run's own process sends them.

Building (matching, rendering, MIME, tokens) is most of an email's CPU; sending is waiting
for replies. In one process, each reply waits for the message being built to finish, and
the server waits in turn, so neither core is kept busy. Here a child forked after planning
(it inherits the plan's matchers and caches, so nothing is rebuilt; the parent's database
connection is closed across the fork, as SQLite asks) builds every due delivery with its
own connection and streams the jobs through a pipe; the parent only claims, sends and
records. The pipe and the parent's buffer hold a few dozen built messages at most, so
memory stays flat.

The child decides nothing the in-process builder would not: it marks the deliveries it
cannot build (failed, or kept for the next run) and reports its counts at the end. It dies
with the run (Linux's parent-death signal); one that stops early leaves what it had not
built pending, counted as one internal error, for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import multiprocessing
import os
import pickle
import signal
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from digest.build import Builder
from digest.errors import StoreError
from digest.send import Job, SendStats
from digest.shards import die_with, peak_mb, private_mb
from digest.store import Store

FRAME = struct.Struct("<Q")  # the length of each pickled message on the pipe
log = logging.getLogger("digest.ahead")
BUFFERED = 2 * 1024 * 1024  # bytes of built jobs read ahead of the senders (x2 before pausing)
PIPE_BYTES = 1024 * 1024  # the pipe's own buffer (Linux's default 64 KB is one email)


@dataclass
class AheadResult:
    """What building did: its failures in `stats`, the seconds it took, whether it ended
    (a child that stopped early never says so)."""

    stats: SendStats = field(default_factory=SendStats)
    seconds: float = 0.0
    finished: bool = False
    peak_mb: float = 0.0  # the child's peak RSS (pages shared with the parent included)
    private_mb: float = 0.0  # the child's own pages at the end


class BuiltAhead:
    """The due deliveries, built by a forked child, as an async stream."""

    def __init__(self, builder: Builder, database: Path | str) -> None:
        self.builder = builder
        self.database = database
        self.result = AheadResult()

    async def jobs(self) -> AsyncIterator[Job]:
        """Each built job as it arrives; at the end, `result` holds the child's counts.

        Raises:
            StoreError: the child's database failed (as building in process would)."""
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # Linux: room for a few dozen
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        context = multiprocessing.get_context("fork")
        child = context.Process(
            target=_build,
            args=(self.builder, self.database, write_fd, os.getpid()),
            daemon=True,
        )
        try:
            with self.builder.store.closed_while():
                child.start()
        except OSError as ex:  # no process to be had (memory, a process limit): build here
            os.close(read_fd)
            os.close(write_fd)
            async for job in self._here(ex):
                yield job
            return
        os.close(write_fd)
        reader = asyncio.StreamReader(limit=BUFFERED)
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        try:
            why = ""
            while (message := await _next(reader)) is not None:
                kind, body = message
                if isinstance(body, Job):
                    yield body
                elif isinstance(body, AheadResult):
                    self.result = body
                elif kind == "error":
                    raise StoreError(f"the message builder: {body}")
                else:
                    why = f": {body}"
        finally:
            transport.close()
            await asyncio.to_thread(_stop, child)
        if not self.result.finished:
            why = f"the message builder stopped{why or f' (exit code {child.exitcode})'}"
            self.result.stats.errors += 1
            self.result.stats.failures.append(
                f"{why}; what it had not built waits for the next run"
            )

    async def _here(self, why: OSError) -> AsyncIterator[Job]:
        """Every due delivery built in this process, as without a builder: a machine that
        cannot start one costs speed, not the run."""
        log.warning("no builder process (%s): building in the run's own process", why)
        before = self.builder.seconds
        for job in self.builder.jobs(None, self.result.stats):
            yield job
            await asyncio.sleep(0)  # let the senders run while messages are being built
        self.result.seconds = self.builder.seconds - before
        self.result.finished = True


async def _next(reader: asyncio.StreamReader) -> tuple[str, object] | None:
    """The next (kind, body) from the child; None at the end of the pipe."""
    try:
        head = await reader.readexactly(FRAME.size)
        (size,) = FRAME.unpack(head)
        message: tuple[str, object] = pickle.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None
    return message


def _stop(child: multiprocessing.process.BaseProcess) -> None:
    """Wait for the child to end; one still building after its reader left is stopped."""
    child.join(timeout=5)
    if child.is_alive():
        child.kill()
        child.join()


def _build(builder: Builder, database: Path | str, fd: int, parent: int) -> None:
    """The child's whole life: its own connection (one must not cross a fork), every due
    delivery built and written to the pipe, then the counts (or the error that stopped it).
    Ctrl-C is the parent's to handle: the child ends when its pipe closes or its parent dies.
    It runs at the lowest priority (`_yield_cpu`)."""
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _yield_cpu()
    out = os.fdopen(fd, "wb")
    try:
        with Store(database) as store:
            builder.rebind(store)
            stats = SendStats()
            for job in builder.jobs(None, stats):
                _put(out, "job", job)
            _put(out, "result", AheadResult(stats, builder.seconds, True, peak_mb(), private_mb()))
    except BrokenPipeError:
        pass  # the parent stopped reading: its run is ending
    except StoreError as ex:
        _put(out, "error", str(ex))
    except Exception as ex:  # a bug: said in the run's report, not only on stderr
        _put(out, "stopped", f"{type(ex).__name__}: {ex}")
    finally:
        with contextlib.suppress(OSError):
            out.close()


def _yield_cpu() -> None:
    """Run on CPU no one else wants: Linux's idle class, and the lowest niceness where there
    is none. The sender and the receiving server (often on the same machine) must have a
    core the moment they wake; at equal priority the builder held it. Against aiosmtpd at
    10,000 subscribers: 686-692 emails/s at equal priority, 720-756 at niceness 19, 800-810
    in the idle class (937/s at 100,000, 91% of smtp-source's rate). Where the builder is
    the bottleneck (smtp-sink, which costs almost nothing) the idle class costs ~8%, as the
    kernel puts a waking sender on the builder's core as if it were idle. Its write locks
    are held for microseconds, so the sender never waits long on it."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(19)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _put(out: IO[bytes], kind: str, body: object) -> None:
    data = pickle.dumps((kind, body), protocol=pickle.HIGHEST_PROTOCOL)
    out.write(FRAME.pack(len(data)))
    out.write(data)
