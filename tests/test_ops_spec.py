"""Operations' specification: when an alert is raised, that it is raised once per problem and
period and mailed to [alerts], what the doctor says of each part, what `run`, `send` and
`serve` refuse to start with, and the exit codes of `digest run` and `digest send`.
A real SQLite file, a real maildir outbox, a real SMTP server; the clock is passed in."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from digest.cli import app
from digest.collect import SourceReport
from digest.config import Config, parse_config
from digest.errors import ConfigError
from digest.models import Subscriber
from digest.ops import MIN_SECRET, alerts, doctor, load_dkim, preflight, send_alerts
from digest.send import SendStats
from digest.store import Store
from tests.conftest import DATA, HF_JUNE, app_config
from tests.smtp_server import Recorder

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
SECRET = "ops-spec-secret-0123456789abcdef-0123"
ADMIN = "admin@example.org"


def _config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "database": {"path": str(tmp_path / "digest.db")},
        "outbox": {"path": str(tmp_path / "outbox")},
        "alerts": {"admin_email": ADMIN},
        "sources": [{"name": "hf", "kind": "hf", "url": str(DATA / HF_JUNE)}],
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_config(data, tmp_path / "digest.toml", {"DIGEST_SECRET": SECRET})


def _failing(store: Store, source: str, times: int, now: datetime = NOW) -> SourceReport:
    for n in range(times):
        store.record_source_failure(source, now - timedelta(hours=n), "HTTP 503")
    return SourceReport(source, "hf", error=f"{source}: HTTP 503")


def _keys(found: list[tuple[str, str, str]]) -> list[str]:
    return [key for key, _, _ in found]


# When an alert is raised


@pytest.mark.parametrize(("streak", "alerted"), [(1, False), (2, False), (3, True), (9, True)])
def test_a_source_alerts_once_its_failures_in_a_row_reach_the_setting(
    tmp_path: Path, store: Store, streak: int, alerted: bool
) -> None:
    report = _failing(store, "arxiv", streak)
    found = alerts(_config(tmp_path), store, [report], SendStats(), NOW)
    assert _keys(found) == (["source:arxiv"] if alerted else [])


def test_a_source_alert_names_the_streak_the_last_error_and_the_last_success(
    tmp_path: Path, store: Store
) -> None:
    store.record_source_success("hf", datetime(2026, 6, 1, 9, 0, tzinfo=UTC), 30, None, None, None)
    report = _failing(store, "hf", 4)
    ((key, subject, body),) = alerts(_config(tmp_path), store, [report], SendStats(), NOW)
    assert key == "source:hf"
    assert subject == "digest: source hf has failed 4 runs in a row"
    assert "  HTTP 503" in body and "Last success: 2026-06-01T09:00:00+00:00." in body
    assert "digest collect --source hf" in body


def test_a_source_that_landed_this_run_raises_nothing_whatever_its_past(
    tmp_path: Path, store: Store
) -> None:
    _failing(store, "hf", 5)
    landed = SourceReport("hf", "hf", fetched=30)
    assert alerts(_config(tmp_path), store, [landed], SendStats(), NOW) == []


def test_the_streak_needed_is_the_configured_one(tmp_path: Path, store: Store) -> None:
    report = _failing(store, "hf", 1)
    config = _config(tmp_path, alerts={"source_failures": 1})
    assert _keys(alerts(config, store, [report], SendStats(), NOW)) == ["source:hf"]


@pytest.mark.parametrize(
    ("stats", "alerted"),
    [
        (SendStats(sent=4, failed=1), False),  # 20%: not above the 20% setting
        (SendStats(sent=3, failed=1), True),  # 25%
        (SendStats(sent=3, deferred=1), True),  # deferred counts as not delivered
        (SendStats(sent=3, errors=1), True),
        (SendStats(sent=1, skipped=100, failed=1), True),  # skips do not dilute the rate
        (SendStats(sent=100, retried=50), False),  # retried, then sent: fine
        (SendStats(skipped=10), False),  # nothing attempted
        (SendStats(), False),
    ],
)
def test_a_run_alerts_when_more_than_the_failure_rate_did_not_go_out(
    tmp_path: Path, store: Store, stats: SendStats, alerted: bool
) -> None:
    found = alerts(_config(tmp_path), store, [], stats, NOW)
    assert _keys(found) == (["run:2026-06-12"] if alerted else [])


def test_a_run_alert_counts_the_failures_and_lists_only_the_first_twenty(
    tmp_path: Path, store: Store
) -> None:
    stats = SendStats(sent=1, failed=30, failures=[f"p{n}@example.org: 550" for n in range(30)])
    ((_, subject, body),) = alerts(_config(tmp_path), store, [], stats, NOW)
    assert subject == "digest: 30 of 31 deliveries failed or were deferred today"
    assert "More than 20% of today's deliveries did not go out." in body
    assert "  p19@example.org: 550" in body and "p20@example.org" not in body


# Once per problem and period


def test_an_alert_sent_is_quiet_for_a_day_then_raised_again(tmp_path: Path, store: Store) -> None:
    config = _config(tmp_path)
    report = _failing(store, "hf", 3)
    store.record_alert("source:hf", "subject", NOW)
    later = NOW + timedelta(days=1)
    assert alerts(config, store, [report], SendStats(), NOW + timedelta(hours=23)) == []
    assert alerts(config, store, [report], SendStats(), later) == []  # exactly a day: quiet
    again = alerts(config, store, [report], SendStats(), later + timedelta(seconds=1))
    assert _keys(again) == ["source:hf"]


def test_one_problems_alert_does_not_silence_another(tmp_path: Path, store: Store) -> None:
    reports = [_failing(store, "hf", 3), _failing(store, "arxiv", 3)]
    store.record_alert("source:hf", "subject", NOW)
    stats = SendStats(sent=1, failed=1)
    found = alerts(_config(tmp_path), store, reports, stats, NOW)
    assert _keys(found) == ["source:arxiv", "run:2026-06-12"]


def test_the_run_alert_is_per_day(tmp_path: Path, store: Store) -> None:
    store.record_alert("run:2026-06-11", "yesterday", NOW - timedelta(hours=2))
    found = alerts(_config(tmp_path), store, [], SendStats(failed=1), NOW)
    assert _keys(found) == ["run:2026-06-12"]


# Sent to [alerts]


def _outbox(tmp_path: Path) -> list[email.message.Message]:
    files = sorted((tmp_path / "outbox" / "new").glob("*.eml"))
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]


def test_each_alert_is_one_plain_text_email_to_the_admin_and_is_remembered(
    tmp_path: Path, store: Store
) -> None:
    config = _config(tmp_path)
    found = alerts(config, store, [_failing(store, "hf", 3)], SendStats(failed=2), NOW)
    assert asyncio.run(send_alerts(config, store, found, NOW)) == 2
    messages = _outbox(tmp_path)
    assert sorted(str(m["Subject"]) for m in messages) == sorted(s for _, s, _ in found)
    for message in messages:
        assert message["To"] == ADMIN and message["From"] == config.mail.from_
        assert message.get_content_type() == "text/plain"
        assert message["Message-ID"].endswith(f"@{config.mail.list_id}>")
    assert len({m["Message-ID"] for m in messages}) == 2
    assert alerts(config, store, [_failing(store, "hf", 1)], SendStats(failed=2), NOW) == []


@pytest.mark.parametrize(
    ("admin", "found"),
    [("", [("run:2026-06-12", "s", "b")]), (ADMIN, [])],
    ids=["no-admin", "no-alert"],
)
def test_without_an_admin_address_or_anything_to_say_nothing_is_sent_or_remembered(
    tmp_path: Path, store: Store, admin: str, found: list[tuple[str, str, str]]
) -> None:
    config = _config(tmp_path, alerts={"admin_email": admin})
    assert asyncio.run(send_alerts(config, store, found, NOW)) == 0
    assert not (tmp_path / "outbox").exists()
    assert not store.alert_sent_since("run:2026-06-12", "")


def test_an_alert_the_relay_refused_is_not_remembered_so_the_next_run_tries_again(
    tmp_path: Path, store: Store, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    recorder.faults.rcpt[ADMIN].append("550 5.1.1 no such admin")
    smtp_cfg = {"host": "127.0.0.1", "port": port, "security": "none", "max_attempts": 1}
    config = _config(tmp_path, smtp=smtp_cfg)
    found = [("run:2026-06-12", "digest: trouble", "body")]
    assert asyncio.run(send_alerts(config, store, found, NOW)) == 0
    assert not store.alert_sent_since("run:2026-06-12", "")
    assert asyncio.run(send_alerts(config, store, found, NOW)) == 1
    (message,) = recorder.to(ADMIN)
    assert b"Subject: digest: trouble" in message.data


# What `run`, `send` and `serve` refuse to start with


@pytest.mark.parametrize(
    ("secret", "ok"), [("", False), ("s" * (MIN_SECRET - 1), False), ("s" * MIN_SECRET, True)]
)
def test_preflight_needs_a_secret_of_at_least_32_characters(
    tmp_path: Path, secret: str, ok: bool
) -> None:
    config = parse_config(
        {"outbox": {"path": str(tmp_path / "o")}}, None, {"DIGEST_SECRET": secret}
    )
    if ok:
        preflight(config, {})
        assert (tmp_path / "o" / "new").is_dir()
    else:
        with pytest.raises(ConfigError, match="DIGEST_SECRET"):
            preflight(config, {})
        assert not (tmp_path / "o").exists()


def test_preflight_refuses_an_outbox_that_cannot_be_a_folder_unless_told_not_to_use_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("x")
    config = _config(tmp_path, outbox={"path": str(tmp_path / "file" / "outbox")})
    with pytest.raises(ConfigError, match=r"\[outbox\]\.path .*cannot be used as a maildir"):
        preflight(config, {})
    preflight(config, {}, outbox=False)


@pytest.mark.parametrize(
    ("mail", "message"),
    [
        ({"dkim_selector": "s"}, "DKIM needs dkim_selector, dkim_domain and dkim_key_file"),
        ({"dkim_selector": "s", "dkim_domain": "example.org"}, "together"),
        (
            {"dkim_selector": "s", "dkim_domain": "example.org", "dkim_key_file": "/nonexistent"},
            "[mail].dkim_key_file /nonexistent: No such file or directory",
        ),
    ],
)
def test_dkim_settings_are_all_or_nothing_and_the_key_must_be_readable(
    tmp_path: Path, mail: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_dkim(_config(tmp_path, mail=mail))
    assert message in str(info.value)
    assert load_dkim(_config(tmp_path)) is None


# What the doctor says


def _verdicts(config: Config, **kw: Any) -> dict[str, tuple[str, str]]:
    return {c.name: (c.verdict, c.detail) for c in doctor(config, **kw)}


@pytest.mark.parametrize(
    ("web", "smtp", "verdict"),
    [
        ("https://digest.example.org", {}, "ok"),
        ("http://digest.example.org", {}, "warn"),
        ("http://127.0.0.1:8000", {}, "warn"),  # the outbox demo: http is the only warning
        ("http://localhost:8000", {"host": "127.0.0.1", "port": 9}, "warn"),
        ("digest.example.org", {}, "fail"),
        ("ftp://digest.example.org", {}, "fail"),
    ],
)
def test_the_doctor_judges_the_base_url_links_will_use(
    tmp_path: Path, web: str, smtp: dict[str, Any], verdict: str
) -> None:
    config = _config(tmp_path, web={"base_url": web}, smtp={**smtp, "timeout": 2})
    got, detail = _verdicts(config)["base url"]
    assert got == verdict
    if smtp:
        assert "links in real emails will point at localhost" in detail


def test_the_doctor_fails_a_bad_from_and_no_enabled_source_and_warns_of_no_postal_address(
    tmp_path: Path,
) -> None:
    off = [{"name": "hf", "kind": "hf", "url": "https://x.org", "enabled": False}]
    data = {"mail": {"from": "not an address"}, "sources": off,
            "database": {"path": str(tmp_path / "d.db")}}  # fmt: skip
    config = parse_config(data, tmp_path / "digest.toml", {"DIGEST_SECRET": SECRET})
    verdicts = _verdicts(config)
    assert verdicts["from"][0] == "fail"
    assert verdicts["sources"] == ("fail", "none enabled")
    assert verdicts["postal address"][0] == "warn"
    assert verdicts["secret"] == ("ok", f"DIGEST_SECRET set ({len(SECRET)} chars)")


def test_the_doctor_warns_of_each_source_failing_in_a_row(tmp_path: Path) -> None:
    config = _config(tmp_path, mail={"postal_address": "1 Street"})
    with Store(config.database.path) as store:
        _failing(store, "arxiv", 2)
    verdicts = _verdicts(config)
    assert verdicts["source arxiv"] == ("warn", "failed 2 run(s) in a row: HTTP 503")
    assert verdicts["database"][0] == "ok" and "integrity ok" in verdicts["database"][1]
    assert "postal address" not in verdicts


def test_the_doctor_names_the_preset_whose_query_does_not_parse(tmp_path: Path) -> None:
    topics = tmp_path / "topics.toml"
    topics.write_text('[good]\nquery = "agent*"\n[broken]\nquery = "diffusion AND (video"\n')
    data = {"topics_path": str(topics), "database": {"path": str(tmp_path / "d.db")}}
    verdict, detail = _verdicts(parse_config(data, None, {}))["topics"]
    assert verdict == "fail" and detail.startswith(f"{topics}: [broken]: ")
    topics.write_text('[good]\nquery = "agent*"\n')
    assert _verdicts(parse_config(data, None, {}))["topics"] == ("ok", "1 topics in topics.toml")


def test_the_doctor_fails_a_database_it_cannot_open(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    verdict, _ = _verdicts(_config(tmp_path), store_path=str(tmp_path / "adir"))["database"]
    assert verdict == "fail"


# Exit codes of `digest run` and `digest send`


def _cli_config(
    tmp_path: Path, sources: list[tuple[str, str, Any]], port: int | None = None
) -> Path:
    smtp = {"backoff": 0, "max_attempts": 1, "concurrency": 2}
    return app_config(tmp_path, sources, port, smtp=smtp)


def _invoke(config: Path, *args: str, secret: str = SECRET) -> Any:
    env = {"DIGEST_SECRET": secret} if secret else {}
    return CliRunner().invoke(app, [*args, "--config", str(config)], env=env)


def test_a_run_where_everything_landed_exits_0_and_quiet_prints_nothing(tmp_path: Path) -> None:
    config = _cli_config(tmp_path, [("hf", "hf", DATA / HF_JUNE)])
    result = _invoke(config, "run", "--quiet")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_a_run_where_every_source_failed_exits_1_and_says_to_check_the_network(
    tmp_path: Path,
) -> None:
    config = _cli_config(tmp_path, [("a", "feed", tmp_path / "a.xml"), ("b", "hf", tmp_path / "b")])
    result = _invoke(config, "run", "--quiet")
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in lines[:2]] == ["a", "b"]
    assert lines[-1] == "Error: every source failed: check the network and the source URLs"


def test_a_dry_run_needs_no_secret_sends_nothing_and_exits_0(tmp_path: Path) -> None:
    config = _cli_config(tmp_path, [("hf", "hf", DATA / HF_JUNE)])
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk(
            [Subscriber("ada@example.org", status="active", topics=["llm-agents"], hour=0)],
            NOW, "test",
        )  # fmt: skip
    result = _invoke(config, "run", "--dry-run", secret="")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "dry run: 1 due" in text and "nothing was collected, recorded or sent." in text
    assert not list(tmp_path.rglob("*.eml"))


def test_send_with_nothing_pending_exits_0_and_any_shard_of_it_too(tmp_path: Path) -> None:
    config = _cli_config(tmp_path, [("hf", "hf", DATA / HF_JUNE)])
    assert _invoke(config, "send", "--quiet").exit_code == 0
    for shard in ("1/1", "2/3"):
        result = _invoke(config, "send", "--quiet", "--shard", shard)
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("shard", "message"),
    [("0/2", "K must be between 1 and N"), ("1/2/3", "is not K/N"), ("1/0", "between")],
)
def test_a_malformed_shard_is_a_usage_error_before_anything_runs(
    tmp_path: Path, shard: str, message: str
) -> None:
    config = _cli_config(tmp_path, [("hf", "hf", DATA / HF_JUNE)])
    result = _invoke(config, "send", "--shard", shard)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "digest.db").exists()


def test_more_than_twenty_failures_are_twenty_lines_and_a_pointer_to_stats(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    config = _cli_config(tmp_path, [("hf", "hf", DATA / HF_JUNE)], port)
    people = [f"p{n:02d}@example.org" for n in range(23)]
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk(
            [Subscriber(p, status="active", topics=["llm-agents"], hour=0) for p in people],
            NOW, "test",
        )  # fmt: skip
    for person in people[1:]:
        recorder.faults.rcpt[person].append("550 5.1.1 unknown user")
    result = _invoke(config, "run", "--quiet")
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 21
    assert all(line.startswith("Error: p") and "550 5.1.1" in line for line in lines[:20])
    assert lines[20] == "Error: ... and 2 more (digest stats)"
    assert len(recorder.to(people[0])) == 1
