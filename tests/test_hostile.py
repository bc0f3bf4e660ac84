"""The whole class of hostile inputs as one table: input -> the one line it costs -> what landed.

Each row runs the real cron job (`python -m digest run --quiet` in a subprocess) against a real
HTTP server serving the recorded HF day, a second source, a real SMTP server and a real SQLite
file. Three subscribers follow the same topic; a row makes one thing hostile (a source, an item,
an address, a setting, an SMTP reply) and checks the three rules: *isolation* (everyone else
still gets their email), *loud* (one line naming it on stderr under --quiet, exit 1 or 2, no
traceback) and *recoverable* (a fault of our own configuration consumes nothing: once fixed, the
next run sends the missed edition). Per-area tables: tests/test_sources_hostile.py (every
hostile body and item) and tests/test_web_hostile.py (every hostile form value).
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from digest.models import Subscriber
from digest.store import Store
from tests.conftest import ARXIV_RSS, HF_JUNE, app_config, recording, subprocess_env
from tests.smtp_server import Recorder

ROOT = Path(__file__).parent.parent
SECRET = "hostile-table-secret-0123456789abcdef"
PEOPLE = ["ada@example.org", "bob@example.org", "zoe@example.org"]


@dataclass
class World:
    """Everything one row may make hostile before the run, and read after it."""

    tmp: Path
    http: HTTPServer
    recorder: Recorder
    port: int
    people: list[str] = field(default_factory=lambda: list(PEOPLE))
    hf_body: bytes = field(default_factory=lambda: recording(HF_JUNE))
    env: dict[str, str] = field(default_factory=lambda: {"DIGEST_SECRET": SECRET})
    smtp: dict[str, Any] = field(default_factory=dict)
    mail: dict[str, Any] = field(default_factory=dict)
    extra: str = ""
    feed: tuple[int, bytes, dict[str, str]] = (200, recording(ARXIV_RSS), {})
    zones: dict[str, str] = field(default_factory=dict)  # a subscriber's stored time zone

    def serve(self) -> None:
        self.http.clear()
        self.http.expect_request("/hf").respond_with_data(self.hf_body)
        status, body, headers = self.feed
        self.http.expect_request("/feed").respond_with_data(body, status=status, headers=headers)

    def config(self) -> Path:
        return app_config(
            self.tmp,
            [("hf", "hf", self.http.url_for("/hf")), ("feed", "arxiv", self.http.url_for("/feed"))],
            self.port,
            smtp={"timeout": 2, "backoff": 0.01, "max_attempts": 2, **self.smtp},
            mail=self.mail,
            extra=self.extra,
        )

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {**subprocess_env(""), **self.env, "DIGEST_DB": str(self.tmp / "digest.db")}
        if not self.env.get("DIGEST_SECRET"):
            del env["DIGEST_SECRET"]
        command = [sys.executable, "-m", "digest", "run", "--config", str(self.config()), "-q"]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False
        )

    def received_by(self) -> list[str]:
        return sorted(r for m in self.recorder.received for r in m.recipients)


@dataclass(frozen=True)
class Case:
    """`line`: a regex that one stderr line must match; `landed`: who received an email."""

    name: str
    make_hostile: Callable[[World], None]
    exit_code: int
    line: str
    landed: list[str]
    fix: Callable[[World], None] | None = None  # our own config fault: fixed, the next run sends


def _feed(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    def change(world: World) -> None:
        world.feed = (status, body, headers or {})

    return change


def _hf_item(**paper: Any) -> Callable[[World], None]:
    def change(world: World) -> None:
        data = json.loads(world.hf_body)
        data[0]["paper"].update(paper)
        world.hf_body = json.dumps(data).encode()

    return change


def _person(address: str) -> Callable[[World], None]:
    def change(world: World) -> None:
        world.people.insert(1, address)

    return change


def _set(**fields: Any) -> Callable[[World], None]:
    def change(world: World) -> None:
        for key, value in fields.items():
            setattr(world, key, value)

    return change


def _smtp_fault(kind: str, address: str, reply: str) -> Callable[[World], None]:
    def change(world: World) -> None:
        getattr(world.recorder.faults, kind)[address].append(reply)

    return change


def _both(*changes: Callable[[World], None]) -> Callable[[World], None]:
    def change(world: World) -> None:
        for one in changes:
            one(world)

    return change


def _bad_dkim_key(world: World) -> None:
    (world.tmp / "dkim.pem").write_text("not a key\n", encoding="utf-8")
    key = str(world.tmp / "dkim.pem")
    world.mail = {"dkim_selector": "s", "dkim_domain": "example.org", "dkim_key_file": key}


BOMB = gzip.compress(b"<rss>" + b" " * 50_000_000)
ALL = sorted(PEOPLE)
CASES = [
    Case("a source answers 500", _feed(500, b"oops"), 1, r"^Error: feed: .*HTTP 500", ALL),
    Case(
        "a source sends a gzip bomb",
        _feed(body=BOMB, headers={"Content-Encoding": "gzip"}),
        1,
        r"^Error: feed: .*after decompression",
        ALL,
    ),
    Case(
        "a source redirects to a link-local address",
        _feed(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}),
        1,
        r"^Error: feed: .*169\.254\.169\.254",
        ALL,
    ),
    Case("a source sends HTML", _feed(body=b"<html>login</html>"), 1, r"^Error: feed: ", ALL),
    Case(
        "an item's upvotes do not fit in SQLite",
        _hf_item(upvotes=10**30),
        1,
        r"^Error: hf: 1 items? skipped: .*upvotes",
        ALL,
    ),
    Case(
        "an item's authors are a string",
        _hf_item(authors="Ada Lovelace"),
        1,
        r"^Error: hf: 1 items? skipped: .*authors",
        ALL,
    ),
    Case(
        "an IDN domain among the subscribers",
        _person("user@münchen.de"),
        0,
        r"^$",
        sorted([*PEOPLE, "user@xn--mnchen-3ya.de"]),
    ),
    Case(
        "a non-ASCII local part and a server without SMTPUTF8",
        _both(_person("jörg@example.org"), lambda w: setattr(w.recorder, "smtputf8", False)),
        1,
        r"jörg@example\.org.*SMTPUTF8",
        ALL,
    ),
    Case(
        "the server refuses one recipient with 550",
        _smtp_fault("rcpt", "bob@example.org", "550 5.1.1 no such user"),
        1,
        r"bob@example\.org.*550",
        ["ada@example.org", "zoe@example.org"],
    ),
    Case(
        "a stored time zone this machine's tz database lacks",
        _set(zones={"bob@example.org": "Mars/Olympus_Mons"}),
        1,
        r"bob@example\.org: time zone 'Mars/Olympus_Mons' is unknown here",
        ["ada@example.org", "zoe@example.org"],
    ),
    Case(
        "the secret is missing",
        _set(env={}),
        2,
        r"DIGEST_SECRET",
        [],
        fix=_set(env={"DIGEST_SECRET": SECRET}),
    ),
    Case(
        "the secret is too short",
        _set(env={"DIGEST_SECRET": "short"}),
        2,
        r"DIGEST_SECRET.*32",
        [],
        fix=_set(env={"DIGEST_SECRET": SECRET}),
    ),
    Case(
        "the DKIM key file is not a key",
        _bad_dkim_key,
        2,
        r"(?i)dkim",
        [],
        fix=_set(mail={}),
    ),
    Case(
        "a timeout of inf",
        _set(extra="[collect]\ntimeout = inf\n"),
        2,
        r"\[collect\]\.timeout: expected a finite number",
        [],
        fix=_set(extra=""),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_hostile_input_costs_only_itself(
    case: Case, tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    world = World(tmp_path, httpserver, recorder, port)
    case.make_hostile(world)
    world.serve()
    with Store(tmp_path / "digest.db") as store:
        people = [
            Subscriber(
                a, status="active", topics=["llm-agents"], hour=0, tz=world.zones.get(a, "UTC")
            )
            for a in world.people
        ]
        store.add_subscribers_bulk(people, datetime(2026, 6, 1, 0, 0, tzinfo=UTC), "test")

    done = world.run()

    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == case.exit_code, done.stderr
    lines = done.stderr.splitlines() or [""]
    assert any(re.search(case.line, line) for line in lines), done.stderr
    assert world.received_by() == case.landed
    if case.fix is None:
        return
    case.fix(world)
    world.serve()
    again = world.run()
    assert again.returncode == 0, again.stderr
    assert world.received_by() == ALL, "the edition a fault of ours held back is sent once fixed"
