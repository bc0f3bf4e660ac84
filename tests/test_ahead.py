"""A run whose messages are built by a second process (`digest.ahead`): the same emails as
when built in the run's own process, build failures counted as before, and a builder that
dies costs only what it had not built, which the next run sends."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import multiprocessing
import multiprocessing.context
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from digest import ahead
from digest.build import Builder
from digest.config import load_config, load_topics
from digest.models import Subscriber
from digest.pipeline import Pipeline, RunReport
from digest.send import Job, Outcome, Sender
from digest.store import Store
from tests.smtp_server import Recorder
from tests.test_pipeline import NOW, SECRET, add_people
from tests.test_shards import _config

PEOPLE = 30


def _people(
    folder: Path,
    extra: list[Subscriber] = (),
    count: int = PEOPLE,  # type: ignore[assignment]
) -> list[str]:
    emails = [f"reader{n}@example.org" for n in range(count)]
    people = [Subscriber(e, status="active", topics=["llm-agents"], hour=0) for e in emails]
    add_people(folder / "digest.db", [*people, *extra])
    return emails


def _run(
    config_path: Path, ahead: bool, on_done: object = None, secret: str = SECRET
) -> tuple[RunReport, Pipeline]:
    config = load_config(config_path, env={"DIGEST_SECRET": secret})
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), NOW)
        pipeline.shard_min = 1  # a test's few deliveries are worth the second process
        pipeline.build_ahead = ahead
        return asyncio.run(pipeline.run(on_done=on_done)), pipeline  # type: ignore[arg-type]


def _emails(recorder: Recorder) -> dict[str, tuple[str, str, str]]:
    """Each recipient's email: its Message-ID, subject and text part (the text's links carry
    a token signed with the second of signing, so they are cut off)."""
    out = {}
    for m in recorder.received:
        msg = message_from_bytes(m.data, policy=default)
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        out[m.recipients[0]] = (msg["Message-ID"], msg["Subject"], text.split("http")[0])
    return out


def test_built_ahead_the_run_sends_the_same_emails_as_built_in_process(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    (tmp_path / "a").mkdir()
    emails = _people(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    inside, _ = _run(_config(tmp_path / "a", port, workers=1), ahead=False)
    in_process = _emails(recorder)
    recorder.received.clear()
    heard: list[tuple[str, str]] = []
    report, pipeline = _run(
        _config(tmp_path / "b", port, workers=1), ahead=True,
        on_done=lambda email, status: heard.append((email, status)),
    )  # fmt: skip
    assert report.send.sent == inside.send.sent == PEOPLE and not report.failed
    assert _emails(recorder) == in_process and sorted(in_process) == sorted(emails)
    assert sorted(heard) == sorted((e, "sent") for e in emails)
    assert len(pipeline.worker_peaks_mb) == 1 and pipeline.worker_peaks_mb[0] > 0
    assert pipeline.timings["render"] > 0, "the builder's seconds reach the stage timings"
    with Store(tmp_path / "b" / "digest.db") as store:
        assert store.delivery_counts() == {"sent": PEOPLE}


def _classes_while_sending(
    tmp_path: Path,
    port: int,
    monkeypatch: pytest.MonkeyPatch,
    people: int,
    *,
    window: int,
    sender_pause: float = 0.0,
) -> tuple[list[int], Pipeline]:
    """The builder's scheduling class, seen after each email while the run sends, judged
    every `window` messages (one sender's group of 32: a window holds a hand-over). The
    parent reads no further ahead than it must, so the builder is at work (or blocked on
    the pipe) while emails go; `sender_pause` (seconds each sender waits before each email,
    without blocking the loop) makes the senders the slower side."""
    monkeypatch.setattr(ahead, "BUFFERED", 1)
    monkeypatch.setattr(ahead.Pace, "WINDOW", window)
    _people(tmp_path, count=people)
    seen: list[int] = []
    deliver = Sender.deliver

    async def paused(self: Sender, job: Job) -> Outcome:
        await asyncio.sleep(sender_pause)
        return await deliver(self, job)

    monkeypatch.setattr(Sender, "deliver", paused)

    def look(email: str, status: str) -> None:
        for child in multiprocessing.active_children():
            with contextlib.suppress(ProcessLookupError):
                seen.append(os.sched_getscheduler(child.pid or 0))

    report, pipeline = _run(_config(tmp_path, port, workers=1), ahead=True, on_done=look)
    assert report.send.sent == people and not report.failed
    assert os.sched_getscheduler(0) == os.SCHED_OTHER, "the run's own process keeps its class"
    return seen, pipeline


def test_a_builder_ahead_of_the_senders_runs_on_cpu_no_one_else_wants(
    tmp_path: Path, smtp: tuple[Recorder, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Senders slower than the builder (50 ms an email each) hardly wait for it: after two
    windows that say so it is in the idle class, so the sender and the receiving server have
    a core the moment they wake. (On a machine this busy otherwise, an idle-class builder
    falls behind and, as root, goes back: that is not asked here.)"""
    seen, pipeline = _classes_while_sending(
        tmp_path, smtp[1], monkeypatch, 300, window=32, sender_pause=0.05
    )
    assert seen[0] == os.SCHED_OTHER and os.SCHED_IDLE in seen, seen
    idle, built = pipeline.builder_idle
    assert built == 300 and 0 < idle < built


def test_a_builder_the_senders_wait_for_keeps_its_share_of_the_cpu(
    tmp_path: Path, smtp: tuple[Recorder, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where building is the bottleneck (here 10 ms a message), the idle class would slow
    the run: the builder stays at equal priority, the bursts after each group hand-over
    notwithstanding."""
    jobs = Builder.jobs

    def slow(self: Builder, *args: Any) -> Iterator[Job]:
        for job in jobs(self, *args):
            time.sleep(0.01)
            yield job

    monkeypatch.setattr(Builder, "jobs", slow)
    seen, pipeline = _classes_while_sending(tmp_path, smtp[1], monkeypatch, 128, window=32)
    assert seen and set(seen) == {os.SCHED_OTHER}, seen
    assert pipeline.builder_idle == (0, 128)


def test_what_the_builder_cannot_build_is_counted_and_named_in_the_run(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """An address that cannot be mailed fails that one delivery (no bounce); the rest go."""
    recorder, port = smtp
    bad = Subscriber("bad@-ñ.example", status="active", topics=["llm-agents"], hour=0)
    emails = _people(tmp_path, [bad])
    report, _ = _run(_config(tmp_path, port, workers=1), ahead=True)
    assert report.failed and report.send.failed == 1 and report.send.sent == PEOPLE
    [line] = report.send.failures
    assert line.startswith("bad@-ñ.example: not built:") and "internationalised" in line
    assert sorted(r for m in recorder.received for r in m.recipients) == sorted(emails)


def test_a_setup_failure_in_the_builder_keeps_every_delivery_for_the_next_run(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """No secret to sign links with: nothing is built, all of it is deferred, and once the
    secret is back, the next run sends each email once."""
    recorder, port = smtp
    emails = _people(tmp_path)
    config_path = _config(tmp_path, port, workers=1)
    first, _ = _run(config_path, ahead=True, secret="")
    assert first.failed and first.send.deferred == PEOPLE and first.send.sent == 0
    assert "DIGEST_SECRET" in first.send.failures[0] and recorder.received == []
    second, _ = _run(config_path, ahead=True)
    assert second.send.sent == PEOPLE and not second.failed
    assert Counter(r for m in recorder.received for r in m.recipients) == Counter(emails)


def test_a_builder_killed_mid_run_costs_what_it_had_not_built_until_the_next_run(
    tmp_path: Path, smtp: tuple[Recorder, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read ahead by one message at a time, the builder is still at work (blocked on the
    pipe, past the sender's first group of 32) when the first email has gone; it is killed
    then."""
    monkeypatch.setattr(ahead, "BUFFERED", 1)
    recorder, port = smtp
    people = 120
    emails = _people(tmp_path, count=people)
    config_path = _config(tmp_path, port, workers=1)
    killed: list[int] = []

    def kill_the_builder(email: str, status: str) -> None:
        if not killed:
            for child in multiprocessing.active_children():
                os.kill(child.pid or 0, signal.SIGKILL)
                killed.append(child.pid or 0)

    first, _ = _run(config_path, ahead=True, on_done=kill_the_builder)
    assert killed and first.failed and first.send.errors == 1
    [line] = [f for f in first.send.failures if "message builder" in f]
    assert "exit code -9" in line and "waits for the next run" in line
    assert 0 < first.send.sent < people
    second, _ = _run(config_path, ahead=True)
    assert first.send.sent + second.send.sent == people and not second.failed
    assert Counter(r for m in recorder.received for r in m.recipients) == Counter(emails)
    with Store(tmp_path / "digest.db") as store:
        assert store.delivery_counts() == {"sent": people}


def test_a_builder_outlives_no_run() -> None:
    """The child asks for the parent-death signal first thing (the same as a send worker's,
    tested in test_shards.py); here: it is gone once its run has ended."""
    assert multiprocessing.active_children() == []


def test_a_bug_in_the_builder_is_named_in_the_run_and_the_rest_waits(
    tmp_path: Path, smtp: tuple[Recorder, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault injected into the child (it inherits the patched class): three emails are
    built, then the builder raises; the run names the error, the next run sends the rest."""
    recorder, port = smtp
    emails = _people(tmp_path)
    real = Builder.jobs

    def three_then_boom(self: Builder, *args: Any, **kwargs: Any) -> Iterator[Job]:
        for n, job in enumerate(real(self, *args, **kwargs)):
            if n == 3:
                raise RuntimeError("boom")
            yield job

    monkeypatch.setattr(Builder, "jobs", three_then_boom)
    config_path = _config(tmp_path, port, workers=1)
    first, _ = _run(config_path, ahead=True)
    assert first.failed and first.send.errors == 1 and first.send.sent == 3
    assert first.send.failures == [
        "the message builder stopped: RuntimeError: boom; what it had not built waits for "
        "the next run"
    ]
    monkeypatch.undo()
    second, _ = _run(config_path, ahead=True)
    assert second.send.sent == PEOPLE - 3 and not second.failed
    assert Counter(r for m in recorder.received for r in m.recipients) == Counter(emails)


def test_no_builder_process_to_be_had_builds_in_the_run_and_sends_everything(
    tmp_path: Path, smtp: tuple[Recorder, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """fork refused (a process limit, no memory): the run builds its messages itself."""

    def refused(self: object) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", refused)
    recorder, port = smtp
    emails = _people(tmp_path)
    report, pipeline = _run(_config(tmp_path, port, workers=1), ahead=True)
    assert report.send.sent == PEOPLE and not report.failed
    assert pipeline.worker_peaks_mb == [] and pipeline.timings["render"] > 0
    assert sorted(r for m in recorder.received for r in m.recipients) == sorted(emails)
