"""A run sent by several processes (`[smtp] workers`): each due subscriber gets one email, the
relay sees no more connections than configured, a worker's failure costs only its shard (sent
by the next run), and a worker never outlives its run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from digest.config import SmtpConfig, load_config, load_topics
from digest.models import Subscriber
from digest.pipeline import Pipeline, RunReport
from digest.send import SendStats
from digest.shards import Events, ShardResult, ShardWork, split_smtp
from digest.store import Store
from tests.conftest import ARXIV_RSS, DATA, HF_JUNE, app_config, rsa_key_file
from tests.smtp_server import Recorder
from tests.test_pipeline import NOW, SECRET, add_people

PEOPLE = 24


def _config(tmp_path: Path, port: int, workers: int = 2, **mail: str) -> Path:
    return app_config(
        tmp_path,
        [("hf", "hf", DATA / HF_JUNE), ("arxiv", "arxiv", DATA / ARXIV_RSS)],
        port,
        smtp={"concurrency": 4, "timeout": 5, "backoff": 0.01, "workers": workers},
        mail=dict(mail),
    )


def _people(tmp_path: Path, count: int = PEOPLE) -> list[str]:
    emails = [f"reader{n}@example.org" for n in range(count)]
    add_people(
        tmp_path / "digest.db",
        [Subscriber(e, status="active", topics=["llm-agents"], hour=0) for e in emails],
    )
    return emails


def _run(
    config_path: Path, heard: list[tuple[str, str]] | None = None
) -> tuple[RunReport, Pipeline]:
    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), NOW)
        pipeline.shard_min = 1  # a test's few deliveries are worth the second process
        hook = (lambda email, status: heard.append((email, status))) if heard is not None else None
        return asyncio.run(pipeline.run(on_done=hook)), pipeline


def test_two_processes_send_each_due_subscriber_exactly_once(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    emails = _people(tmp_path)
    heard: list[tuple[str, str]] = []
    report, pipeline = _run(_config(tmp_path, port), heard)
    got = Counter(r for m in recorder.received for r in m.recipients)
    assert got == Counter(emails)
    assert report.send.sent == PEOPLE and not report.failed
    assert len(pipeline.worker_peaks_mb) == 1 and pipeline.worker_peaks_mb[0] > 0
    # the worker's deliveries reach the progress hook too, each once
    assert sorted(heard) == sorted((e, "sent") for e in emails)
    # connections are shared out, not multiplied: 2 + 2 for concurrency = 4
    assert 2 <= recorder.most_open <= 4
    with Store(tmp_path / "digest.db") as store:
        assert store.delivery_counts() == {"sent": PEOPLE}
    again, _ = _run(_config(tmp_path, port))
    assert again.send.sent == 0 and len(recorder.received) == PEOPLE


def test_one_process_is_used_below_the_threshold(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    _, port = smtp
    _people(tmp_path, 3)
    config = load_config(_config(tmp_path, port), env={"DIGEST_SECRET": SECRET})
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), NOW)
        report = asyncio.run(pipeline.run())
    assert report.send.sent == 3 and pipeline.worker_peaks_mb == []


def test_a_worker_that_cannot_start_costs_only_its_shard_until_the_fix(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """The DKIM key disappears after the run started: the worker (which reads it anew) stops
    with one line naming its shard; shard 1 is sent; the next run sends the rest, once."""
    recorder, port = smtp
    key = tmp_path / "dkim.pem"
    rsa_key_file(key)
    good = key.read_bytes()
    config_path = _config(
        tmp_path, port, dkim_selector="sel", dkim_domain="example.org", dkim_key_file=str(key)
    )
    emails = _people(tmp_path)
    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), NOW)
        pipeline.shard_min = 1
        key.unlink()
        first = asyncio.run(pipeline.run())
    assert first.failed and first.send.errors == 1
    [line] = [f for f in first.send.failures if "shard 2/2" in f]
    assert "dkim.pem" in line and "waits for the next run" in line
    sent_first = {r for m in recorder.received for r in m.recipients}
    assert 0 < len(sent_first) < PEOPLE and first.send.sent == len(sent_first)
    key.write_bytes(good)
    second, _ = _run(config_path)
    got = Counter(r for m in recorder.received for r in m.recipients)
    assert got == Counter(emails) and second.send.sent == PEOPLE - len(sent_first)


@pytest.mark.parametrize(
    ("concurrency", "workers", "shares"),
    [(8, 2, [4, 4]), (5, 2, [3, 2]), (4, 3, [2, 1, 1]), (1, 3, [1, 1, 1])],
)
def test_connections_and_rate_are_shared_out(
    concurrency: int, workers: int, shares: list[int]
) -> None:
    smtp = SmtpConfig(concurrency=concurrency, rate_per_second=30.0, workers=workers)
    split = [split_smtp(smtp, workers, i) for i in range(workers)]
    assert [s.concurrency for s in split] == shares
    assert sum(s.rate_per_second for s in split) == pytest.approx(30.0)
    assert all(s.workers == 1 for s in split)


def _sleep_long(work: ShardWork, events: Events) -> ShardResult:
    print(os.getpid(), flush=True)
    time.sleep(60)
    return ShardResult(SendStats())


_PARENT = """
import asyncio, sys, time
sys.path.insert(0, {root!r})
from datetime import UTC, datetime
from digest import shards
from digest.config import load_config
from tests.test_shards import _sleep_long
import os
config = load_config(None, env={{}})
work = shards.ShardWork(config, {{}}, datetime.now(UTC), (2, 2), os.getpid(), False)
processes, channel = shards.start(_sleep_long, [work])
time.sleep(60)
"""


def test_a_worker_dies_with_its_run() -> None:
    """SIGKILL the run: its worker must not go on sending behind the run lock's back."""
    root = str(Path(__file__).parent.parent)
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT.format(root=root)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    with parent.stdout:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/status") as status:  # a zombie is dead, only not yet reaped
        return "zombie" not in status.read()
