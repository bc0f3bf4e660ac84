"""Operations: stats, the doctor's verdicts, one alert per problem, and several sending
processes that never take the same delivery."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.cli import app
from digest.config import load_config, load_topics
from digest.models import Subscriber
from digest.ops import doctor
from digest.pipeline import Pipeline
from digest.store import DeliveryStatus, PlannedDelivery, Store
from tests.conftest import DATA, HF_JUNE, app_config, rsa_key_file, subprocess_env
from tests.smtp_server import Recorder

ROOT = Path(__file__).parent.parent
SECRET = "ops-test-secret-0123456789abcdef0123"
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)


def ops_config(tmp_path: Path, port: int, extra: str = "", source: str = "") -> Path:
    return app_config(
        tmp_path,
        [("hf", "hf", source or DATA / HF_JUNE)],
        port,
        smtp={"concurrency": 2, "backoff": 0, "max_attempts": 1},
        extra=extra,
    )


def test_doctor_gives_a_verdict_for_each_part(tmp_path: Path, smtp: tuple[Recorder, int]) -> None:
    _, port = smtp
    config = load_config(ops_config(tmp_path, port), env={"DIGEST_SECRET": SECRET})
    verdicts = {c.name: c.verdict for c in doctor(config)}
    assert verdicts == {
        "config": "ok", "database": "ok", "smtp": "ok", "secret": "ok", "base url": "ok",
        "from": "ok", "topics": "ok", "sources": "ok",
    }  # fmt: skip
    broken = ops_config(tmp_path, 9)  # nothing listens on the discard port; no secret
    result = CliRunner().invoke(app, ["doctor", "--config", str(broken)])
    assert result.exit_code == 1
    assert "FAIL  smtp: 127.0.0.1:9:" in result.stdout
    assert "FAIL  secret: DIGEST_SECRET is not set" in result.stdout
    assert "2 check(s) failed: smtp, secret" in result.stderr


def test_stats_after_a_run(tmp_path: Path, smtp: tuple[Recorder, int]) -> None:
    _, port = smtp
    path = ops_config(tmp_path, port)
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk(
            [Subscriber("a@example.org", status="active", topics=["llm-agents"], hour=0),
             Subscriber("b@example.org", status="pending", topics=["robotics"])],
            NOW, "test",
        )  # fmt: skip
    _run(path, NOW)
    result = CliRunner().invoke(app, ["stats", "--config", str(path), "--json"])
    data = json.loads(result.stdout)
    assert data["subscribers"] == {"active": 1, "pending": 1}
    assert data["deliveries"] == {"sent": 1}
    assert data["top_topics"] == {"llm-agents": 1}
    assert data["sources"][0]["source"] == "hf" and data["sources"][0]["failures"] == 0
    assert CliRunner().invoke(app, ["stats", "--config", str(path)]).exit_code == 0


def test_stats_json_names_each_recent_failure_as_an_object(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    _, port = smtp
    path = ops_config(tmp_path, port)
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk([Subscriber("ada@example.org", status="active")], NOW, "test")
        store.plan_deliveries(
            [
                PlannedDelivery(
                    1, "ada@example.org", "2026-06-12", DeliveryStatus.PENDING, (), "<m>"
                )
            ],
            NOW,
        )
        store.mark_failed(1, "not built: no template", NOW)
    result = CliRunner().invoke(app, ["stats", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recent_failures"] == [
        {"email": "ada@example.org", "edition": "2026-06-12",
         "last_reply": "not built: no template", "updated_at": NOW.isoformat()}
    ]  # fmt: skip
    text = CliRunner().invoke(app, ["stats", "--config", str(path)])
    assert "not built: no template" in text.stdout


def _run(path: Path, now: datetime):  # type: ignore[no-untyped-def]
    config = load_config(path, env={"DIGEST_SECRET": SECRET})
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), now)
        return asyncio.run(pipeline.run())


def test_a_failing_source_alerts_the_admin_once(tmp_path: Path, smtp: tuple[Recorder, int]) -> None:
    recorder, port = smtp
    path = ops_config(
        tmp_path, port, '[alerts]\nadmin_email = "admin@example.org"\nsource_failures = 3\n',
        source=str(tmp_path / "missing.json"),
    )  # fmt: skip
    sent = []
    for hour in range(5):
        report = _run(path, NOW + timedelta(hours=hour))
        sent.append(report.alerts)
    assert sent == [0, 0, 1, 0, 0]
    (alert,) = recorder.to("admin@example.org")
    assert b"source hf has failed 3 runs in a row" in alert.data
    assert _run(path, NOW + timedelta(days=1, hours=3)).alerts == 1  # 24 h later, still broken


def test_a_run_with_many_failures_alerts_once(tmp_path: Path, smtp: tuple[Recorder, int]) -> None:
    recorder, port = smtp
    path = ops_config(tmp_path, port, '[alerts]\nadmin_email = "admin@example.org"\n')
    people = [
        Subscriber(f"p{n}@example.org", status="active", topics=["llm-agents"], hour=0)
        for n in range(4)
    ]
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk(people, NOW, "test")
    for n in range(2):
        recorder.faults.rcpt[f"p{n}@example.org"].append("550 5.1.1 unknown user")
    report = _run(path, NOW)
    assert (report.send.sent, report.send.failed, report.alerts) == (2, 2, 1)
    (alert,) = recorder.to("admin@example.org")
    assert b"2 of 4 deliveries failed or were deferred" in alert.data


def test_a_run_sends_its_digests_and_its_alert_over_one_smtp_connection(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """The run opens one transport for its digests and its alerts, and closes it once."""
    recorder, port = smtp
    path = app_config(
        tmp_path, [("hf", "hf", DATA / HF_JUNE)], port,
        smtp={"concurrency": 1, "backoff": 0, "max_attempts": 1},
        extra='[alerts]\nadmin_email = "admin@example.org"\n',
    )  # fmt: skip
    people = [
        Subscriber(f"p{n}@example.org", status="active", topics=["llm-agents"], hour=0)
        for n in range(2)
    ]
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk(people, NOW, "test")
    recorder.faults.rcpt["p0@example.org"].append("550 5.1.1 unknown user")
    before = recorder.connections  # the server's own check that it started
    report = _run(path, NOW)
    assert (report.send.sent, report.send.failed, report.alerts) == (1, 1, 1)
    assert len(recorder.to("admin@example.org")) == 1
    assert recorder.connections - before == 1


def test_two_sending_processes_never_take_the_same_delivery(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    """`digest run --no-send` plans; two `digest send --shard K/2` processes send at once."""
    recorder, port = smtp
    path = ops_config(tmp_path, port)
    people = [
        Subscriber(f"s{n}@example.org", status="active", topics=["llm-agents"], hour=0)
        for n in range(300)
    ]
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk(people, NOW, "test")
    digest = [sys.executable, "-m", "digest"]
    planned = subprocess.run(
        [*digest, "run", "--no-send", "--config", str(path)],
        env=subprocess_env(SECRET), cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    assert "0 sent, 300 planned" in planned.stdout
    workers = [
        subprocess.Popen(
            [*digest, "send", "--shard", f"{k}/2", "--config", str(path)],
            env=subprocess_env(SECRET),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    sent = [int(out.split(" sent")[0].rsplit(" ", 1)[-1]) for out, _ in outputs]
    assert sum(sent) == 300 and all(n > 0 for n in sent)
    counts = Counter(r for m in recorder.received for r in m.recipients)
    assert len(counts) == 300 and set(counts.values()) == {1}


CLAIMER = """
import sys
from datetime import UTC, datetime
from digest.store import Store
store = Store(sys.argv[1])
mine = [i for i in range(1, 401) if store.claim_delivery(i, datetime.now(UTC))]
print(",".join(map(str, mine)))
"""


def test_claims_are_exclusive_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "digest.db"
    with Store(db) as store:
        people = [
            Subscriber(f"c{n}@example.org", status="active", queries=["x"]) for n in range(400)
        ]
        store.add_subscribers_bulk(people, NOW, "test")
        store.plan_deliveries(
            [PlannedDelivery(n + 1, p.email, "e", DeliveryStatus.PENDING, (), f"<{n}@x>")
             for n, p in enumerate(people)],
            NOW,
        )  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    claimed = [set(map(int, filter(None, p.communicate(timeout=60)[0].strip().split(","))))
               for p in procs]  # fmt: skip
    assert claimed[0].isdisjoint(claimed[1])
    assert claimed[0] | claimed[1] == set(range(1, 401))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", "--shard", "3/2"], "K must be between 1 and N"),
        (["send", "--shard", "half"], "is not K/N"),
        (["run", "--edition", "someday"], "is not a date"),
    ],
)
def test_bad_run_and_send_options_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output


def test_doctor_checks_the_dkim_key_and_prints_the_record_to_publish(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    _, port = smtp
    key = tmp_path / "dkim.pem"
    public = rsa_key_file(key)
    mail = '[mail]\ndkim_selector = "d2026"\ndkim_domain = "example.org"\n'
    path = ops_config(tmp_path, port)
    text = path.read_text().replace("[mail]\n", mail + f'dkim_key_file = "{key}"\n')
    path.write_text(text)
    runner = CliRunner()
    good = runner.invoke(app, ["doctor", "--config", str(path)], env={"DIGEST_SECRET": SECRET})
    assert good.exit_code == 0, good.output
    record = base64.b64encode(public).decode()
    expected = (
        f'OK  dkim: signs; publish: d2026._domainkey.example.org TXT "v=DKIM1; k=rsa; p={record}"'
    )
    assert expected in good.stdout
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    bad = runner.invoke(app, ["doctor", "--config", str(path)], env={"DIGEST_SECRET": "s" * 20})
    assert bad.exit_code == 1
    assert "FAIL  dkim: [mail] DKIM key for example.org: not a PEM RSA private key" in bad.stdout
    assert "FAIL  secret: DIGEST_SECRET has 20 chars; run, send and serve need 32+" in bad.stdout
    assert "2 check(s) failed: secret, dkim" in bad.stderr


@pytest.mark.parametrize("command", ["run", "send", "serve", "doctor"])
def test_help_documents_the_exit_codes(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 all done; 1 something failed" in " ".join(result.stdout.split())
