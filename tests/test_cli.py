"""The command line end to end: real config files, a real database, a real HTTP server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from digest.cli import app
from tests.conftest import ARXIV_RSS, DATA, HF_JUNE, recording, write_config

runner = CliRunner()
PAPER_KEYS = {
    "id",
    "title",
    "authors",
    "categories",
    "version",
    "announce_type",
    "upvotes",
    "sources",
    "published",
}


def served_config(tmp_path: Path, server: HTTPServer) -> Path:
    server.expect_request("/api/daily_papers").respond_with_data(recording(HF_JUNE))
    server.expect_request("/rss").respond_with_data(recording(ARXIV_RSS))
    return write_config(
        tmp_path,
        f"""
[database]
path = "{tmp_path / "cli.db"}"
[collect]
retries = 0
[[sources]]
name = "hf"
kind = "hf"
url = "{server.url_for("/api/daily_papers")}"
[[sources]]
name = "arxiv"
kind = "arxiv"
url = "{server.url_for("/rss")}"
[[sources]]
name = "broken"
kind = "feed"
url = "{server.url_for("/missing")}"
""",
    )


def test_collect_prints_a_summary_and_names_the_failed_source(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = served_config(tmp_path, httpserver)
    result = runner.invoke(app, ["collect", "--config", str(config), "--date", "2026-06-12"])
    assert result.exit_code == 1, result.output  # one source failed, the others landed
    for word in ("source", "fetched", "new", "updated", "errors", "hf", "arxiv", "broken"):
        assert word in result.stdout
    assert "34 papers stored." in result.stdout
    assert "Error: broken: GET http://" in result.stderr
    assert "Traceback" not in result.output


def test_papers_json_has_the_contract_keys(tmp_path: Path, httpserver: HTTPServer) -> None:
    config = served_config(tmp_path, httpserver)
    runner.invoke(app, ["collect", "--config", str(config), "--source", "arxiv"])
    result = runner.invoke(app, ["papers", "--config", str(config), "--json", "--limit", "50"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4
    assert all(set(row) >= PAPER_KEYS for row in rows)
    row = next(r for r in rows if r["id"] == "2609.26820")
    assert row["authors"] == ["Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan"]
    assert row["categories"] == ["cs.LG", "cs.AI"] and row["sources"] == ["arxiv"]
    assert (row["version"], row["announce_type"]) == (1, "new")
    found = runner.invoke(app, ["papers", "--config", str(config), "spectral", "--json"])
    assert [json.loads(line)["id"] for line in found.stdout.splitlines()] == ["2609.26811"]


def test_unknown_source_is_one_line_and_refuses_with_exit_2(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = served_config(tmp_path, httpserver)
    result = runner.invoke(app, ["collect", "--config", str(config), "--source", "nope"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: no source named 'nope' (known: hf, arxiv, broken)"


def test_bad_date_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["collect", "--date", "24/11/2026"])
    assert result.exit_code == 2
    assert "is not a date like 2026-11-24" in result.output


def test_python_m_digest_reports_a_bad_config_without_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[smtp]\nport = 'x'\n")
    done = subprocess.run(
        [sys.executable, "-m", "digest", "papers", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2  # refused to start: configuration
    assert done.stderr.strip().splitlines() == [
        f"Error: {config}: [smtp].port: expected int, got str 'x'"
    ]


def _commands() -> list[list[str]]:
    """Every command and subcommand the app registers, as argv prefixes."""
    import typer.main

    found: list[list[str]] = []

    def walk(group: object, prefix: list[str]) -> None:
        for name, command in getattr(group, "commands", {}).items():
            found.append([*prefix, name])
            walk(command, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    commands = _commands()
    assert len(commands) > 20
    for argv in commands:
        result = runner.invoke(app, [*argv, "--help"])
        assert result.exit_code == 0, argv
        assert len(result.stdout) > 80, argv
        listed = re.search(rf"digest {argv[0]} [a-z|]*\b{argv[-1]}\b", readme)
        assert f"digest {' '.join(argv)}" in readme or (len(argv) == 2 and listed), (
            f"`digest {' '.join(argv)}` is not in README.md"
        )


def test_an_internationalised_subscriber_added_by_the_operator_gets_the_digest(
    tmp_path: Path,
) -> None:
    """`subscribers add 'user@münchen.de' --active` then `run`: it used to stop the whole
    batch with a UnicodeEncodeError; now every subscriber's email lands in the outbox."""
    config = write_config(
        tmp_path,
        f'[[sources]]\nname = "hf"\nkind = "hf"\nurl = "{DATA / HF_JUNE}"\n'
        f'[outbox]\npath = "{tmp_path / "outbox"}"\n',
    )
    for address in ("ada@example.org", "user@münchen.de", "jörg@münchen.de", "zoe@example.org"):
        added = runner.invoke(
            app, ["subscribers", "add", address, "-t", "llm-agents", "--hour", "0", "--active",
                  "-c", str(config)],
        )  # fmt: skip
        assert added.exit_code == 0, added.output
    env = {"DIGEST_SECRET": "s" * 32}
    result = runner.invoke(app, ["run", "--quiet", "-c", str(config)], env=env)
    assert result.exit_code == 0, result.output
    heads = [f.read_bytes().split(b"\r\n\r\n")[0] for f in (tmp_path / "outbox" / "new").iterdir()]
    to = sorted(line for h in heads for line in h.split(b"\r\n") if line.startswith(b"To: "))
    assert to == [
        b"To: ada@example.org", "To: jörg@xn--mnchen-3ya.de".encode(),
        b"To: user@xn--mnchen-3ya.de", b"To: zoe@example.org",
    ]  # fmt: skip
