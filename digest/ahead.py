"""Messages built in a second process while the run's own process sends them.

Building (matching, rendering, MIME, tokens) is most of an email's CPU; sending is waiting
for replies. In one process, each reply waits for the message being built to finish, and
the server waits in turn, so neither core is kept busy. Here a child forked after planning
(it inherits the plan's matchers and caches, so nothing is rebuilt; the parent's database
connection is closed across the fork, as SQLite asks) builds every due delivery with its
own connection and streams the jobs through a pipe; the parent only claims, sends and
records. The pipe and the parent's buffer hold a few dozen built messages at most, so
memory stays flat.

While the senders hardly wait for it, the parent puts the child in Linux's idle class, so
the sender and a receiving server on the same machine have a core whenever they wake (`Pace`).

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
import time
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
    built: int = 0  # messages received from it (counted by the parent, as `Pace` is)
    built_idle: int = 0  # of those, received while it was in the idle class


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
        pace = Pace(child.pid)
        try:
            why = ""
            while True:
                started = time.perf_counter()
                if (message := await _next(reader)) is None:
                    break
                kind, body = message
                if isinstance(body, Job):
                    pace.waited(time.perf_counter() - started)
                    yield body
                elif isinstance(body, AheadResult):
                    self.result = body
                    self.result.built, self.result.built_idle = pace.count, pace.count_idle
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
    While it is ahead, the parent keeps it in the idle class (`Pace`)."""
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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


class Pace:
    """The builder's scheduling class, chosen by how long the senders wait for its messages.
    Ahead of them (under a tenth of two windows in a row spent waiting), it is moved to
    Linux's idle class: it can wait, while the sender and a server on the same machine need
    a core the moment they wake, and at equal priority it held one. Against aiosmtpd at
    10,000 subscribers: 638-692 emails/s at equal priority, 793-810 in the idle class.
    Behind them (waiting over 40%: smtp-sink, which costs almost nothing) it is the
    bottleneck and stays at equal priority, where the idle class cost 6-10% (the kernel puts
    a waking sender on its core, as if idle). Behind for two windows once idle, it is moved
    back where the system allows: an unprivileged process may not leave the idle class
    unless RLIMIT_NICE says so, and then stays there for the rest of the run. Its only
    writes mark what it could not build; on a saturated machine an idle-class builder
    holding that lock would make the sender wait, within the busy timeout."""

    WINDOW = 128  # messages (~0.15 s); the first window, the pipe filling, is not judged
    AHEAD, BEHIND = 0.1, 0.4  # shares of a window's time spent waiting for the builder

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.idle = False
        self.stuck = False  # refused the way back: stays in the idle class
        self.count = self.count_idle = 0
        self._started = time.perf_counter()
        self._waited = 0.0
        self._ahead = self._behind = 0  # windows in a row ahead, behind

    def waited(self, seconds: float) -> None:
        """The senders waited `seconds` for one more message; at the end of a window,
        change the builder's class if the window says so."""
        self.count += 1
        self.count_idle += self.idle
        self._waited += seconds
        if self.count % self.WINDOW:
            return
        now = time.perf_counter()
        share = self._waited / max(now - self._started, 1e-9)
        self._started, self._waited = now, 0.0
        if self.count == self.WINDOW:
            return
        self._ahead = self._ahead + 1 if share < self.AHEAD else 0
        self._behind = self._behind + 1 if share > self.BEHIND else 0
        if not self.idle and self._ahead >= 2:  # the burst after a hand-over is not a trend
            self.idle = _set_class(self.pid, getattr(os, "SCHED_IDLE", -1))
        elif self.idle and not self.stuck and self._behind >= 2:
            self.stuck = not _set_class(self.pid, os.SCHED_OTHER)
            self.idle = self.stuck


def _set_class(pid: int | None, policy: int) -> bool:
    """Whether the process is now in this scheduling class (it may be gone: no harm). The
    parent has not reaped it yet, so its pid cannot be another process's."""
    if not pid:
        return False
    try:
        os.sched_setscheduler(pid, policy, os.sched_param(0))
    except (OSError, AttributeError):
        return False
    return True


def _put(out: IO[bytes], kind: str, body: object) -> None:
    data = pickle.dumps((kind, body), protocol=pickle.HIGHEST_PROTOCOL)
    out.write(FRAME.pack(len(data)))
    out.write(data)
