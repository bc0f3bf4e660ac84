"""The daily job end to end: real recordings, a real SQLite file, a real SMTP server, the real
CLI in a subprocess killed with SIGKILL at random moments."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.bounces.events import VerpDelivery
from digest.bounces.verp import read_token, token_in_address
from digest.build import feedback_id_for
from digest.cli import app
from digest.config import load_config, load_topics
from digest.edition import Edition
from digest.errors import DigestError
from digest.message import message_id_for
from digest.models import Subscriber
from digest.pipeline import Pipeline, RunReport, settled_heap
from digest.schedule import RunLock
from digest.send import GROUP
from digest.store import DeliveryStatus, PlannedDelivery, Store
from tests.conftest import ARXIV_RSS, DATA, HF_JUNE, app_config, rsa_key_file
from tests.smtp_server import Recorder

ROOT = Path(__file__).parent.parent
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)  # a Friday
SECRET = "test-secret-0123456789abcdefghijklmnop"


CONCURRENCY = 4


def write_config(tmp_path: Path, smtp_port: int | None = None, **mail: str) -> Path:
    return app_config(
        tmp_path,
        [("hf", "hf", DATA / HF_JUNE), ("arxiv", "arxiv", DATA / ARXIV_RSS)],
        smtp_port,
        smtp={"concurrency": CONCURRENCY, "timeout": 5, "backoff": 0.01},
        mail={"unsubscribe_mailto": "unsubscribe@example.org", **mail},
    )


def add_people(db: Path, people: list[Subscriber]) -> None:
    with Store(db) as store:
        store.add_subscribers_bulk(people, NOW, "test")


def run_pipeline(config_path: Path, now: datetime = NOW, **kw: bool) -> RunReport:
    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), now)
        return asyncio.run(pipeline.run(**kw))  # type: ignore[arg-type]


def test_run_sends_once_to_who_is_due_and_a_second_run_sends_nothing(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    config = write_config(tmp_path, port)
    add_people(
        tmp_path / "digest.db",
        [
            Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=8),
            Subscriber("late@example.org", status="active", queries=["agent"], hour=20),
            Subscriber("weekly@example.org", status="active", queries=["agent"],
                       cadence="weekly", weekday="mon", hour=0),
            Subscriber("pending@example.org", status="pending", queries=["agent"], hour=0),
            Subscriber("nothing@example.org", status="active", queries=["zzzunmatched"], hour=0),
        ],
    )  # fmt: skip
    first = run_pipeline(config)
    assert [r.recipients for r in recorder.received] == [["ada@example.org"]]
    assert (first.send.sent, first.plan.not_due, first.plan.no_matches) == (1, 2, 1)
    msg = email.message_from_bytes(recorder.received[0].data, policy=email.policy.default)
    assert "EvoArena" in msg.get_body(("plain",)).get_content()
    assert msg["List-Unsubscribe"].startswith("<https://digest.example.org/u/")
    second = run_pipeline(config, now=NOW.replace(hour=10))
    assert second.send.sent == 0 and second.plan.already == 2
    assert len(recorder.received) == 1
    with Store(tmp_path / "digest.db") as store:
        row = store.delivery(1, "2026-06-12")
        assert row.status == "sent" and "2606.13681" in row.papers
        assert store.delivery(5, "2026-06-12").status == "skipped"


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    with Store(tmp_path / "digest.db") as store:
        store.upsert_papers("hf", [], NOW)
    report = run_pipeline(config, dry_run=True)
    assert report.send.sent == 0
    with Store(tmp_path / "digest.db") as store:
        assert store.count_papers() == 0
        assert store.delivery_counts() == {}
        assert store.get_edition("2026-06-12") is None


def test_the_note_policy_explains_an_empty_day(tmp_path: Path) -> None:
    config = write_config(tmp_path, no_matches="note")
    add_people(
        tmp_path / "digest.db",
        [Subscriber("z@example.org", status="active", queries=["zzzunmatched"], hour=0)],
    )
    report = run_pipeline(config)
    assert report.send.sent == 1
    (eml,) = (tmp_path / "outbox" / "new").iterdir()
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "z@example.org"


def test_a_second_run_waits_for_the_lock(tmp_path: Path) -> None:
    db = str(tmp_path / "digest.db")
    with RunLock(db), pytest.raises(DigestError, match="another digest run holds"):
        RunLock(db).__enter__()
    # shard workers share the lock with each other, never with a run that may recover
    with RunLock(db, shared=True), RunLock(db, shared=True), pytest.raises(DigestError):
        RunLock(db).__enter__()


def test_cli_run_writes_the_outbox_and_prints_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    runner = CliRunner()
    env = {"DIGEST_SECRET": SECRET}
    result = runner.invoke(app, ["run", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digest run: edition ")
    assert "1 sent" in lines[0]
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1
    quiet = runner.invoke(app, ["run", "--config", str(config), "--quiet"], env=env)
    assert quiet.exit_code == 0 and quiet.stdout == ""
    no_secret = runner.invoke(app, ["send", "--config", str(config)])
    assert no_secret.exit_code == 2  # refused before looking: a link could not be signed
    assert no_secret.stderr.startswith("Error: DIGEST_SECRET is not set")


def test_smtp_down_is_a_clear_failure(tmp_path: Path) -> None:
    config = write_config(tmp_path, smtp_port=9)  # nothing listens on the discard port
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    text = config.read_text().replace("backoff = 0.01", "backoff = 0.0\nmax_attempts = 2")
    config.write_text(text)
    result = CliRunner().invoke(
        app, ["run", "--config", str(config)], env={"DIGEST_SECRET": SECRET}
    )
    assert result.exit_code == 1
    assert "nothing could be sent: check the SMTP server" in result.stderr
    assert "ada@example.org: will retry later: connection problem" in result.stderr
    with Store(tmp_path / "digest.db") as store:
        assert store.delivery(1, datetime.now(UTC).date().isoformat()).status == "pending"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["DIGEST_SECRET"] = SECRET
    return env


def _digest(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "run", "--config", str(config), "--quiet", *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def _kill_mid_send(
    config: Path, recorder: Recorder, prefix: str, target: int, rng: random.Random
) -> bool:
    """Run the job and SIGKILL it once the server has accepted `target` messages to
    addresses starting with `prefix`, plus a random fraction of a message's time so the kill
    lands anywhere in one. False when the run finished first."""
    run = _digest(config, "--no-collect")
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        done = sum(1 for m in recorder.received if m.recipients[0].startswith(prefix))
        if done >= target:
            time.sleep(rng.uniform(0, 0.02))
            break
        time.sleep(0.002)
    killed = run.poll() is None
    if killed:
        run.send_signal(signal.SIGKILL)
    run.communicate()
    return killed


def test_sigkill_at_random_moments_never_loses_or_doubles_mail(
    tmp_path: Path, smtp: tuple[Recorder, int], record_property: object
) -> None:
    """500 subscribers; each trial kills a run at a random moment, then a clean run finishes.
    Every subscriber ends with exactly one accepted message, except at most the deliveries
    that were in flight at a kill (flagged possible duplicates), which are counted."""
    recorder, port = smtp
    rng = random.Random()  # different kill points every run; the report says where they fell
    trials = 3
    report = []
    for trial in range(trials):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        config = write_config(folder, port)
        people = [
            Subscriber(f"t{trial}p{n}@example.org", status="active", topics=["llm-agents"], hour=0)
            for n in range(500)
        ]
        add_people(folder / "digest.db", people)
        subprocess.run(
            [sys.executable, "-m", "digest", "collect", "--config", str(config)],
            check=True, capture_output=True, cwd=ROOT, env=_env(),
        )  # fmt: skip
        targets = sorted(rng.sample(range(1, 450), 2))
        kills = sum(_kill_mid_send(config, recorder, f"t{trial}p", t, rng) for t in targets)
        final = _digest(config, "--no-collect")
        _, stderr = final.communicate(timeout=120)
        assert final.returncode == 0, stderr.decode()
        counts = Counter(
            r for m in recorder.received for r in m.recipients if r.startswith(f"t{trial}p")
        )
        with Store(folder / "digest.db") as store:
            flagged = {
                r["email"]
                for r in store.db.query("select email from deliveries where possible_duplicate")
            }
            statuses = store.delivery_counts()
        assert statuses == {"sent": 500}, statuses
        assert set(counts) == {p.email for p in people}, "every subscriber got their email"
        doubles = {address for address, n in counts.items() if n > 1}
        # one extra copy at most per kill that caught the delivery in flight
        assert all(counts[a] <= 1 + kills for a in doubles), counts.most_common(3)
        assert doubles <= flagged, f"unflagged duplicates: {doubles - flagged}"
        extra = sum(n - 1 for n in counts.values())
        # the group-commit bound (digest.send.Sender): per kill, at most 2G + 2c left
        # `sending` (resent, flagged), of which at most G + c had really been accepted
        assert len(flagged) <= kills * (2 * GROUP + 2 * CONCURRENCY), (len(flagged), kills)
        assert extra <= kills * (GROUP + CONCURRENCY), (extra, kills)
        report.append(
            f"trial {trial}: killed after {targets} accepted ({kills} kills), "
            f"{len(flagged)} in flight, {len(doubles)} delivered more than once ({extra} extra)"
        )
    record_property("crash_trials", "; ".join(report))
    print("\n" + "\n".join(report))


def test_unconfirmed_signups_are_purged_after_the_configured_days(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with Store(tmp_path / "digest.db") as store:
        old = NOW.replace(day=3)  # 9 days before the run; the default is 7
        store.add_subscribers_bulk([Subscriber("old@example.org", queries=["x"])], old, "web")
        store.add_subscribers_bulk([Subscriber("new@example.org", queries=["x"])], NOW, "web")
    report = run_pipeline(config)
    assert report.purged == 1
    with Store(tmp_path / "digest.db") as store:
        assert store.get_subscriber("old@example.org") is None
        assert store.get_subscriber("new@example.org").status == "pending"
        assert store.subscriber_events(1)[-1]["cause"] == "never confirmed"


IDN_PEOPLE = ["ada@example.org", "jörg@münchen.de", "zoe@example.org"]


@pytest.mark.parametrize("offered", [True, False])
def test_an_internationalised_address_costs_nobody_else_their_digest(
    tmp_path: Path, smtp: tuple[Recorder, int], offered: bool
) -> None:
    """The middle subscriber's address needs SMTPUTF8: offered, all three are delivered;
    not offered, that one waits (pending, with the reason) and the others go out."""
    recorder, port = smtp
    recorder.smtputf8 = offered
    config = write_config(tmp_path, port)
    add_people(
        tmp_path / "digest.db",
        [Subscriber(a, status="active", topics=["llm-agents"], hour=0) for a in IDN_PEOPLE],
    )
    report = run_pipeline(config)
    got = sorted(r for m in recorder.received for r in m.recipients)
    if offered:
        assert got == ["ada@example.org", "jörg@xn--mnchen-3ya.de", "zoe@example.org"]
        assert (report.send.sent, report.failed) == (3, False)
        return
    assert got == ["ada@example.org", "zoe@example.org"]
    assert (report.send.sent, report.send.deferred, report.failed) == (2, 1, True)
    with Store(tmp_path / "digest.db") as store:
        row = store.delivery(2, "2026-06-12")
    assert row.status == "pending" and "does not offer SMTPUTF8" in row.last_reply


def test_an_internationalised_address_lands_in_the_outbox(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add_people(
        tmp_path / "digest.db",
        [Subscriber(a, status="active", topics=["llm-agents"], hour=0) for a in IDN_PEOPLE],
    )
    assert run_pipeline(config).send.sent == 3
    heads = [f.read_bytes().split(b"\r\n\r\n")[0] for f in (tmp_path / "outbox" / "new").iterdir()]
    assert any("\r\nTo: jörg@xn--mnchen-3ya.de\r\n".encode() in h for h in heads)


def _dkim_config(tmp_path: Path, port: int, key: bytes) -> Path:
    (tmp_path / "dkim.pem").write_bytes(key)
    mail = {"dkim_selector": "sel", "dkim_domain": "example.org",
            "dkim_key_file": str(tmp_path / "dkim.pem")}  # fmt: skip
    return write_config(tmp_path, port, **mail)


def _rsa_key(tmp_path: Path) -> bytes:
    path = tmp_path / "good.pem"
    rsa_key_file(path)
    return path.read_bytes()


def test_our_broken_dkim_key_mid_run_keeps_the_edition_for_the_next_run(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """The library path has no preflight: a key that does not sign, met while building,
    leaves every delivery pending and counted; fixed, the next run sends them all."""
    recorder, port = smtp
    config = _dkim_config(tmp_path, port, b"-----BEGIN RSA PRIVATE KEY-----\nnope\n")
    people = [Subscriber(f"p{n}@example.org", status="active", topics=["llm-agents"], hour=0)
              for n in range(3)]  # fmt: skip
    add_people(tmp_path / "digest.db", people)
    first = run_pipeline(config)
    assert recorder.received == []
    assert (first.send.sent, first.send.failed, first.send.deferred, first.failed) == (
        0, 0, 3, True,
    )  # fmt: skip
    assert all("not built, kept for the next run" in f for f in first.send.failures)
    with Store(tmp_path / "digest.db") as store:
        assert store.delivery_counts() == {"pending": 3}
    _dkim_config(tmp_path, port, _rsa_key(tmp_path))
    second = run_pipeline(config, now=NOW.replace(hour=10))
    assert second.send.sent == 3 and len(recorder.received) == 3
    assert recorder.received[0].data.startswith(b"DKIM-Signature:")


def test_a_missing_secret_mid_run_keeps_the_edition_for_the_next_run(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    loaded = load_config(config, env={})
    with Store(loaded.database.path) as store:
        pipeline = Pipeline(loaded, store, load_topics(loaded.topics_path), NOW)
        report = asyncio.run(pipeline.run())
        assert (report.send.failed, report.send.deferred) == (0, 1)
        assert store.delivery(1, "2026-06-12").status == "pending"
    assert run_pipeline(config, now=NOW.replace(hour=10)).send.sent == 1


def test_a_message_that_cannot_be_built_costs_only_its_delivery(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """An address no server can take (an invalid IDNA domain that reached the database):
    that delivery fails with its reason and is counted; the others go out."""
    recorder, port = smtp
    config = write_config(tmp_path, port)
    people = ["ada@example.org", "bad@-ñ.example", "zoe@example.org"]
    add_people(
        tmp_path / "digest.db",
        [Subscriber(a, status="active", topics=["llm-agents"], hour=0) for a in people],
    )
    report = run_pipeline(config)
    assert (report.send.sent, report.send.failed) == (2, 1)
    assert report.send.failures[0].startswith("bad@-ñ.example: not built: ")
    with Store(tmp_path / "digest.db") as store:
        row = store.delivery(2, "2026-06-12")
        assert row.status == "failed" and "internationalised domain" in row.last_reply
        assert store.get_subscriber("bad@-ñ.example").bounces == 0
    assert len(recorder.received) == 2


def _refusals(tmp_path: Path) -> dict[str, tuple[dict[str, str], str]]:
    good = {"DIGEST_SECRET": SECRET}
    (tmp_path / "bad.pem").write_text("this is not a key\n")
    (tmp_path / "tpl").mkdir()
    return {
        "no secret": ({}, "DIGEST_SECRET is not set"),
        "short secret": ({"DIGEST_SECRET": "x" * 31}, "DIGEST_SECRET is 31 characters"),
        "dkim not a key": (good, "DKIM key for example.org: not a PEM RSA private key"),
        "no templates": (good, "templates"),
    }


@pytest.mark.parametrize("case", ["no secret", "short secret", "dkim not a key", "no templates"])
@pytest.mark.parametrize("command", [["run", "--quiet"], ["send"], ["serve", "--port", "1"]])
def test_run_send_and_serve_refuse_to_start_on_our_setup_mistakes(
    tmp_path: Path, case: str, command: list[str]
) -> None:
    """One line, exit 2, and nothing touched: not even the database is created."""
    env, message = _refusals(tmp_path)[case]
    mail = {}
    if case == "dkim not a key":
        mail = {"dkim_selector": "s", "dkim_domain": "example.org",
                "dkim_key_file": str(tmp_path / "bad.pem")}  # fmt: skip
    config = write_config(tmp_path, **mail)
    if case == "no templates":
        config.write_text(f'templates_dir = "{tmp_path / "tpl"}"\n' + config.read_text())
    result = CliRunner().invoke(app, [*command, "--config", str(config)], env=env)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ") and message in line
    assert not (tmp_path / "digest.db").exists()


def test_every_failure_is_a_line_and_exit_1_also_when_quiet(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    config = app_config(
        tmp_path,
        [("hf", "hf", DATA / HF_JUNE), ("gone", "feed", tmp_path / "missing.xml")],
        port,
        smtp={"backoff": 0.0},
    )
    add_people(
        tmp_path / "digest.db",
        [Subscriber(a, status="active", topics=["llm-agents"], hour=0)
         for a in ("ada@example.org", "bob@example.org")],
    )  # fmt: skip
    recorder.faults.rcpt["bob@example.org"].append("550 5.1.1 No such user")
    result = CliRunner().invoke(
        app, ["run", "--quiet", "--config", str(config)], env={"DIGEST_SECRET": SECRET}
    )
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("Error: gone: ")
    assert lines[1] == "Error: bob@example.org: 550 5.1.1 No such user"
    assert recorder.to("ada@example.org")


def test_a_read_only_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Root ignores file modes; the immutable attribute stops root too (ext4)."""
    config = write_config(tmp_path)
    add_people(tmp_path / "digest.db", [Subscriber("ada@example.org", status="active")])
    db = tmp_path / "digest.db"
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode:
        pytest.skip("no immutable attribute on this filesystem")
    try:
        result = CliRunner().invoke(
            app, ["run", "--quiet", "--config", str(config)], env={"DIGEST_SECRET": SECRET}
        )
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {db}: attempt to write a readonly database")
    assert "read-only: make both writable" in line


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from digest.cli import main
sys.argv = ["digest", *sys.argv[2:]]
main()
"""


def test_a_full_disk_during_collect_is_one_line_exit_2_and_nothing_half_written(
    tmp_path: Path,
) -> None:
    """RLIMIT_FSIZE refuses writes past the database's current size, as a full disk would."""
    config = write_config(tmp_path)
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    limit = str((tmp_path / "digest.db").stat().st_size + 8192)
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, limit, "run", "--quiet", "--config", str(config)],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"Error: {tmp_path / 'digest.db'}: ") and "run again" in line
    with Store(tmp_path / "digest.db") as store:
        assert store.integrity() == "ok"
        # each source's batch is one transaction: whole sources or none (hf 30, arxiv 4)
        assert store.count_papers() in (0, 4, 30, 34) and store.delivery_counts() == {}
    # with room again, the day is not lost (real time: the killed run stamped papers with it)
    assert run_pipeline(config, now=datetime.now(UTC)).send.sent == 1


def test_feed_text_reaches_the_terminal_without_control_characters(tmp_path: Path) -> None:
    hostile = json.loads((DATA / HF_JUNE).read_text())
    hostile[0]["paper"]["title"] = "Agents \x1b[2J\x1b]0;pwned\x07 evil\x9b31m title"
    feed = tmp_path / "hostile.json"
    feed.write_text(json.dumps(hostile))
    config = app_config(tmp_path, [("hf", "hf", feed)], None)
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", queries=["agents"], hour=0)],
    )
    CliRunner().invoke(app, ["collect", "--config", str(config)])
    result = CliRunner().invoke(
        app, ["run", "--dry-run", "--config", str(config)], env={"DIGEST_SECRET": SECRET}
    )
    assert result.exit_code == 0, result.output
    assert "Agents  evil31m title" in result.stdout
    assert not any(c in result.output for c in "\x1b\x07\x9b")


def test_skipped_feed_items_make_the_run_exit_1_with_a_line(tmp_path: Path) -> None:
    items = json.loads((DATA / HF_JUNE).read_text())
    items[1]["paper"]["authors"] = "not a list"
    feed = tmp_path / "one-bad-item.json"
    feed.write_text(json.dumps(items))
    config = app_config(tmp_path, [("hf", "hf", feed)], None)
    result = CliRunner().invoke(
        app, ["run", "--quiet", "--config", str(config)], env={"DIGEST_SECRET": SECRET}
    )
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: hf: 1 items skipped")


# ---------------------------------------------------------------- plan, build, deliver


def _plain_text(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def test_building_a_message_before_planning_leaves_the_edition_to_the_plan(
    tmp_path: Path,
) -> None:
    """A pipeline asked to build a delivery of yesterday's edition first (as `digest send`
    does) still opens today's edition when it plans, and plans today's papers."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            '[[sources]]\nname = "hf"', '[[sources]]\nname = "hf"\nenabled = false', 1
        )
    )
    ada = Subscriber(
        "ada@example.org", status="active", hour=0,
        queries=["cat:cs.LG OR cat:stat.ML"], topics=["llm-agents"],
    )  # fmt: skip
    add_people(tmp_path / "digest.db", [ada])
    yesterday = NOW - timedelta(days=1)
    run_pipeline(config, now=yesterday, send=False)  # arXiv only, planned and not sent
    config.write_text(config.read_text().replace("enabled = false\n", ""))
    loaded = load_config(config, env={"DIGEST_SECRET": SECRET})
    with Store(loaded.database.path) as store:
        (row,) = store.due_deliveries(NOW)
        sub = store.get_subscriber(row.subscriber_id)
        assert sub is not None and sub.id is not None
        pipeline = Pipeline(loaded, store, load_topics(loaded.topics_path), NOW)
        built = pipeline.build(row, sub)
        assert built is not None and row.edition == "2026-06-11"
        report = asyncio.run(pipeline.run(send=False))
        assert report.plan.planned == 1
        assert store.get_edition("2026-06-12") is not None
        today = store.delivery(sub.id, "2026-06-12")
        assert today is not None and "2606.13681" in today.papers


def test_a_planned_email_reads_the_same_whatever_the_pipeline_did_before(
    tmp_path: Path,
) -> None:
    """A delivery planned before its counts were kept states none of them, whether or not
    this pipeline planned others of its edition first: no step leaves a result for the next."""
    config = write_config(tmp_path)
    add_people(
        tmp_path / "digest.db",
        [Subscriber(a, status="active", topics=["llm-agents"], hour=0)
         for a in ("old@example.org", "new@example.org")],
    )  # fmt: skip
    run_pipeline(config, send=False)
    loaded = load_config(config, env={"DIGEST_SECRET": SECRET})
    texts = []
    for plan_first in (False, True):
        with Store(loaded.database.path) as store:
            with store.write():
                store.db.execute("delete from deliveries")
                store.db.execute("delete from editions")
            store.plan_deliveries(
                [PlannedDelivery(1, "old@example.org", "2026-06-12", DeliveryStatus.PENDING,
                                 ("2606.13681",), "<legacy@example.org>")],
                NOW,
            )  # fmt: skip
            pipeline = Pipeline(loaded, store, load_topics(loaded.topics_path), NOW)
            if plan_first:
                assert pipeline.plan().planned == 1  # new@ only: old@ is planned already
            (row,) = [r for r in store.due_deliveries(NOW) if r.subscriber_id == 1]
            old = store.get_subscriber(1)
            assert old is not None
            built = pipeline.build(row, old)
            assert built is not None
            # Signed links carry the second they were made: compare the emails, not the clock.
            texts.append(
                re.sub(
                    r"/(u|manage|w|f|fb/more|fb/less)/[\w.-]+",
                    r"/\1/TOKEN",
                    _plain_text(built.data),
                )
            )
    assert texts[0] == texts[1]
    assert "new papers" not in texts[0].splitlines()[1]


def test_preview_out_writes_the_message_the_daily_job_builds(tmp_path: Path) -> None:
    """`digest preview --out` and the daily job build through one function: the same
    headers that matter (Message-ID, List-Unsubscribe-Post) and the same text."""
    config = write_config(tmp_path)
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    CliRunner().invoke(app, ["collect", "--config", str(config)])
    out = tmp_path / "preview"
    result = CliRunner().invoke(
        app,
        ["preview", "--subscriber", "ada@example.org", "--out", str(out), "--config", str(config)],
        env={"DIGEST_SECRET": SECRET},
    )
    assert result.exit_code == 0, result.output
    edition = datetime.now(UTC).date().isoformat()
    eml = (out / f"{edition}-ada@example.org.eml").read_bytes()
    previewed = email.message_from_bytes(eml, policy=email.policy.default)
    assert previewed["Message-ID"].startswith(f"<digest.{edition}.1.")
    assert previewed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert _plain_text(eml) == (out / f"{edition}-ada@example.org.txt").read_text()
    report = run_pipeline(config, now=datetime.now(UTC), collect=False)
    assert report.send.sent == 1
    (sent,) = (tmp_path / "outbox" / "new").iterdir()
    daily = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    for header in ("Subject", "Message-ID", "From", "To", "List-Id", "List-Unsubscribe-Post"):
        assert previewed[header] == daily[header], header
    assert _plain_text(eml).splitlines()[:2] == _plain_text(sent.read_bytes()).splitlines()[:2]


def test_with_a_bounce_address_mail_from_is_the_signed_verp_address_of_the_delivery(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """Issue 14: a bounce names its delivery by the address it came back to."""
    recorder, port = smtp
    config = write_config(tmp_path, port)
    config.write_text(config.read_text() + '[bounces]\naddress = "bounces@example.org"\n')
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    assert run_pipeline(config).send.sent == 1
    (got,) = recorder.received
    token = token_in_address(got.sender, "bounces@example.org")
    assert token is not None and got.sender.endswith("@example.org")
    assert read_token(SECRET, token) == VerpDelivery(1, "2026-06-12")
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert msg["From"] == "Paper Digest <digest@example.org>", "From stays the list's"
    assert msg["Message-ID"] == message_id_for(1, "2026-06-12", str(msg["From"]), SECRET)
    assert msg["Message-ID"] != message_id_for(1, "2026-06-12", str(msg["From"]))
    assert msg["Feedback-ID"] is None, "no Feedback-ID unless [mail] feedback_id is set"


def test_without_a_bounce_address_mail_from_is_the_from_address(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    config = write_config(tmp_path, port)
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    assert run_pipeline(config).send.sent == 1
    assert recorder.received[0].sender == "digest@example.org"


def test_feedback_id_names_cadence_edition_and_sender_never_the_subscriber(
    tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path), env={"DIGEST_SECRET": SECRET})
    edition = Edition.daily(NOW.date())
    assert feedback_id_for(config, edition) == ""
    configured = replace(config, mail=replace(config.mail, feedback_id="digest-example"))
    assert feedback_id_for(configured, edition) == "daily:2026-06-12:digest-example"
    weekly = Edition.weekly(NOW.date())
    assert feedback_id_for(configured, weekly) == "weekly:2026-W24:digest-example"


def test_a_run_leaves_the_collector_as_it_found_it(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """Sending freezes what planning built and makes full passes rarer (`settled_heap`);
    the caller's process gets its thresholds back and nothing left frozen, even on error."""
    import gc

    _, port = smtp
    config = write_config(tmp_path, port)
    add_people(
        tmp_path / "digest.db",
        [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
    )
    before = gc.get_threshold()
    assert run_pipeline(config).send.sent == 1
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), settled_heap():
        assert gc.get_freeze_count() > 0 and gc.get_threshold()[2] == 1000
        raise RuntimeError("a failure while sending")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
