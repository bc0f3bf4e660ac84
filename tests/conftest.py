"""Shared fixtures: every test gets its own database and config, and never a user's files."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from digest.config import Config, parse_config
from digest.store import Store
from tests.smtp_server import Recorder, start

DATA = Path(__file__).parent / "data"
HF_JUNE = "hf_daily_papers_2026-06-12.json"
HF_JULY = "hf_daily_papers_2026-07-31_first5.json"
ARXIV_RSS = "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_4items.xml"
ARXIV_ATOM = "arxiv_atom_cs.AI_2025-08-20.xml"
ARXIV_API = "arxiv_api_query_cs.LG_OR_cs.AI_2026-04-30.xml"
ARXIV_API_TRANSFORMER = "arxiv_api_query_transformer_cs.LG_2026-06-14.xml"
TAKARA = "generic_rss_takara_tldr_daily_ai_papers_2026-04-30.xml"


def rsa_key_file(path: Path, bits: int = 1024) -> bytes:
    """Write a fresh PEM RSA private key to path; return its public half (DER), for DKIM."""
    subprocess.run(["openssl", "genrsa", "-out", str(path), str(bits)], check=True,
                   capture_output=True)  # fmt: skip
    return subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip


def recording(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads a real config, database or secret of the machine it runs on."""
    for key in list(os.environ):
        if key.startswith("DIGEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DIGEST_DB", str(tmp_path / "digest.db"))
    monkeypatch.setenv("DIGEST_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "no-config.toml").write_text("", encoding="utf-8")
    yield


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    """A real SMTP server on 127.0.0.1 that records what it accepted (faults on demand)."""
    recorder = Recorder(stall_seconds=1.5)
    controller = start(recorder)
    try:
        yield recorder, controller.port
    finally:
        controller.stop()


@pytest.fixture
def downstream() -> Iterator[tuple[Recorder, int]]:
    """A real SMTP server on 127.0.0.1 recording what a relay (a real Postfix) passes on."""
    recorder = Recorder()
    controller = start(recorder)
    try:
        yield recorder, controller.port
    finally:
        controller.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "digest.db") as opened:
        yield opened


def make_config(tmp_path: Path, sources: list[dict[str, Any]], **sections: Any) -> Config:
    """A config as if read from a file in tmp_path; fast retries so fault tests stay quick."""
    data: dict[str, Any] = {
        "database": {"path": str(tmp_path / "digest.db")},
        "collect": {"timeout": 2.0, "retries": 2, "backoff": 0.01, "max_retry_after": 5},
        "sources": sources,
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_config(data, tmp_path / "digest.toml", {})


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def app_config(
    tmp_path: Path,
    sources: list[tuple[str, str, Any]],
    smtp_port: int | None = None,
    *,
    smtp: dict[str, Any] | None = None,
    mail: dict[str, Any] | None = None,
    web: dict[str, Any] | None = None,
    extra: str = "",
) -> Path:
    """A whole config file for tests of the job, the web app and operations: the database
    and outbox in tmp_path, these sources, and SMTP to a local test server when a port is given."""
    sections: dict[str, dict[str, Any]] = {
        "database": {"path": tmp_path / "digest.db"},
        "mail": {"from": "Paper Digest <digest@example.org>",
                 "postal_address": "1 Example Street, Paris", **(mail or {})},
        "outbox": {"path": tmp_path / "outbox"},
        "web": {"base_url": "https://digest.example.org", **(web or {})},
    }  # fmt: skip
    if smtp_port:
        sections["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                            "rate_per_second": 0, **(smtp or {})}  # fmt: skip
    text = "".join(
        f'[[sources]]\nname = "{name}"\nkind = "{kind}"\nurl = {_toml_value(url)}\n'
        for name, kind, url in sources
    )
    for section, values in sections.items():
        text += f"[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
    return write_config(tmp_path, text + extra)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def subprocess_env(secret: str, **extra: str) -> dict[str, str]:
    """The environment for running `python -m digest` in a child process: the caller's, minus
    every DIGEST_ variable (no real config, database or secret leaks in), plus this secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return {**env, "DIGEST_SECRET": secret, **extra}
