"""The command line as a user meets it: each command's happy path (what it prints, what it
stored) and each refusal (one line on stderr, README's exit code, nothing changed).

Every test runs the real typer app over a real SQLite file in tmp_path (conftest's isolated_env
points DIGEST_DB there) and reads the state back through the CLI itself, as a script would.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from digest.cli import app
from digest.tokens import Tokens
from tests.conftest import DATA, HF_JUNE, write_config

runner = CliRunner()
SECRET = "cli-spec-secret-0123456789abcdef0123"
ADA = "ada@example.org"


def cli(*argv: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(argv), env=env, input=stdin)


def add(email: str = ADA, *flags: str) -> None:
    added = cli("subscribers", "add", email, "--active", *(flags or ("-t", "robotics")))
    assert added.exit_code == 0, added.output


def people() -> dict[str, dict[str, Any]]:
    """Every subscriber as `subscribers list --json` shows them, by address."""
    listed = cli("subscribers", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    return {row["email"]: row for row in rows}


def one_error_line(result: Result) -> str:
    """The refusal's only stderr line (README: errors are one line, never a traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def hf_config(tmp_path: Path, extra: str = "") -> Path:
    """A config whose only source is the recorded HF page, read from disk (no network)."""
    return write_config(
        tmp_path, f'[[sources]]\nname = "hf"\nkind = "hf"\nurl = "{DATA / HF_JUNE}"\n{extra}'
    )


# subscribers add


def test_add_active_stores_every_preference_given_on_the_command_line() -> None:
    result = cli(
        "subscribers", "add", " Ada@Example.org ", "-q", "diffusion", "-q", "title:gan",
        "-t", "robotics", "--cadence", "weekly", "--weekday", "fri", "--hour", "7",
        "--tz", "Europe/Paris", "--max", "5", "--min-upvotes", "3", "--active",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "Added Ada@example.org (active).\n"
    ada = people()["Ada@example.org"]
    assert (ada["status"], ada["queries"], ada["topics"]) == (
        "active",
        ["diffusion", "title:gan"],
        ["robotics"],
    )
    assert (ada["cadence"], ada["weekday"], ada["hour"], ada["tz"]) == (
        "weekly",
        "fri",
        7,
        "Europe/Paris",
    )
    assert (ada["max_papers"], ada["min_upvotes"]) == (5, 3)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-t", "nope"], f"Error: {ADA}: unknown topic 'nope' (known: "),
        ([], f"Error: {ADA}: give at least one query or topic"),
        (["-t", "robotics", "--cadence", "monthly"], "cadence 'monthly' is not daily or weekly"),
        (["-t", "robotics", "--hour", "24"], "hour 24 is not between 0 and 23"),
        (["-q", "diffusion AND (video"], "Error: "),
        (["-t", "robotics", "--min-upvotes", "-1"], "min upvotes cannot be negative"),
    ],
)
def test_add_refuses_a_bad_value_with_one_line_exit_1_and_stores_nobody(
    flags: list[str], message: str
) -> None:
    result = cli("subscribers", "add", ADA, "--active", *flags)
    assert result.exit_code == 1
    assert message in one_error_line(result)
    assert result.stdout == ""
    assert people() == {}


def test_adding_a_known_address_again_changes_nothing() -> None:
    add(ADA, "-t", "robotics", "--hour", "7")
    again = cli("subscribers", "add", ADA.upper(), "--active", "-t", "diffusion")
    assert again.exit_code == 1
    assert "already a subscriber" in one_error_line(again)
    ada = people()[ADA]
    assert (ada["topics"], ada["hour"]) == (["robotics"], 7)


# subscribers list and show


def test_list_shows_everyone_with_a_count_per_status_and_filters_by_status() -> None:
    add("a@example.org")
    add("b@example.org", "-t", "diffusion", "--cadence", "weekly", "--weekday", "tue")
    assert cli("subscribers", "pause", "b@example.org").exit_code == 0
    table = cli("subscribers", "list")
    assert table.exit_code == 0, table.output
    assert "weekly" in table.stdout and "(tue)" in table.stdout  # rich wraps narrow columns
    assert table.stdout.rstrip().endswith("2 shown; 1 active, 1 paused.")
    paused = cli("subscribers", "list", "--status", "paused", "--json")
    assert [json.loads(line)["email"] for line in paused.stdout.splitlines()] == ["b@example.org"]


def test_list_with_nobody_says_so() -> None:
    result = cli("subscribers", "list")
    assert result.exit_code == 0
    assert result.stdout.rstrip().endswith("0 shown; none yet.")


def test_list_refuses_an_unknown_status_as_a_usage_error() -> None:
    result = cli("subscribers", "list", "--status", "bogus")
    assert result.exit_code == 2
    assert "'bogus' is not one of pending, active, paused, unsubscribed" in result.stderr
    assert result.stdout == ""


def test_show_prints_the_preferences_and_the_history_of_changes() -> None:
    add(ADA, "-t", "robotics", "--tz", "Europe/Paris")
    assert cli("subscribers", "edit", ADA, "--hour", "6").exit_code == 0
    shown = cli("subscribers", "show", ADA)
    assert shown.exit_code == 0, shown.output
    assert "Europe/Paris" in shown.stdout and "robotics" in shown.stdout
    history = shown.stdout.split("history", 1)[1]
    assert "created" in history and "added by operator" in history
    assert history.index("created") < history.index("hour")


@pytest.mark.parametrize("command", ["show", "edit", "pause", "resume", "unsubscribe", "links"])
def test_a_command_on_an_unknown_address_is_one_line_and_exit_1(command: str) -> None:
    add()
    extra = ["--hour", "9"] if command == "edit" else []
    result = cli("subscribers", command, "who@example.org", *extra, env={"DIGEST_SECRET": SECRET})
    assert result.exit_code == 1
    assert one_error_line(result).startswith("Error: who@example.org: no such subscriber")
    assert people()[ADA]["status"] == "active"


# subscribers edit


def test_edit_replaces_the_lists_given_and_keeps_the_rest() -> None:
    add(ADA, "-q", "diffusion", "-t", "robotics", "--hour", "7")
    result = cli("subscribers", "edit", ADA, "-q", "gan", "-q", "vae", "--max", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Updated {ADA}.\n"
    ada = people()[ADA]
    assert (ada["queries"], ada["topics"]) == (["gan", "vae"], ["robotics"])
    assert (ada["max_papers"], ada["hour"]) == (3, 7)


def test_edit_can_clear_one_list_but_never_both() -> None:
    add(ADA, "-q", "diffusion", "-t", "robotics")
    cleared = cli("subscribers", "edit", ADA, "--clear-queries")
    assert cleared.exit_code == 0, cleared.output
    assert people()[ADA]["queries"] == []
    both = cli("subscribers", "edit", ADA, "--clear-topics")
    assert both.exit_code == 1
    assert one_error_line(both) == f"Error: {ADA}: give at least one query or topic"
    assert people()[ADA]["topics"] == ["robotics"]


def test_edit_with_nothing_to_change_is_a_usage_error() -> None:
    add()
    before = people()
    result = cli("subscribers", "edit", ADA)
    assert result.exit_code == 2
    assert "nothing to change: give at least one option" in result.stderr
    assert people() == before


def test_edit_refuses_a_bad_time_zone_and_keeps_the_old_one() -> None:
    add(ADA, "-t", "robotics", "--tz", "Europe/Paris")
    result = cli("subscribers", "edit", ADA, "--tz", "Mars/Olympus")
    assert result.exit_code == 1
    assert "unknown time zone 'Mars/Olympus'" in one_error_line(result)
    assert people()[ADA]["tz"] == "Europe/Paris"


# subscribers pause, resume, unsubscribe


def test_pause_for_weeks_records_the_day_it_ends() -> None:
    add()
    result = cli("subscribers", "pause", ADA, "--weeks", "2")
    assert result.exit_code == 0, result.output
    ends = (datetime.now(UTC) + timedelta(weeks=2)).date()
    assert result.stdout in {
        f"{ADA} is paused until {day}.\n" for day in (ends, ends - timedelta(days=1))
    }
    ada = people()[ADA]
    assert ada["status"] == "paused"
    assert date.fromisoformat(ada["paused_until"][:10]) in {ends, ends - timedelta(days=1)}


def test_pause_refuses_zero_weeks_as_a_usage_error() -> None:
    add()
    result = cli("subscribers", "pause", ADA, "--weeks", "0")
    assert result.exit_code == 2
    assert people()[ADA]["status"] == "active"


def test_pause_then_resume_then_unsubscribe() -> None:
    add()
    paused = cli("subscribers", "pause", ADA)
    assert paused.stdout == f"{ADA} is paused.\n"
    resumed = cli("subscribers", "resume", ADA)
    assert resumed.exit_code == 0 and resumed.stdout == f"{ADA} is now active.\n"
    assert people()[ADA]["status"] == "active"
    gone = cli("subscribers", "unsubscribe", ADA)
    assert gone.exit_code == 0 and gone.stdout == f"{ADA} is now unsubscribed.\n"
    assert people()[ADA]["status"] == "unsubscribed"


def test_the_operator_cannot_resume_someone_who_unsubscribed() -> None:
    add()
    assert cli("subscribers", "unsubscribe", ADA).exit_code == 0
    result = cli("subscribers", "resume", ADA)
    assert result.exit_code == 1
    assert one_error_line(result) == f"Error: {ADA}: cannot go from unsubscribed to active"
    assert people()[ADA]["status"] == "unsubscribed"


# subscribers remove


def test_remove_without_yes_and_without_a_terminal_refuses_and_keeps_the_subscriber() -> None:
    add()
    result = cli("subscribers", "remove", ADA)
    assert result.exit_code == 2
    assert "refusing without --yes" in result.stderr
    assert ADA in people()


def test_remove_prints_what_it_erased() -> None:
    add()
    result = cli("subscribers", "remove", ADA, "--yes")
    assert result.exit_code == 0
    assert result.stdout == f"Removed {ADA}.\n"
    assert people() == {}
    assert cli("subscribers", "show", ADA).exit_code == 1


# subscribers import and export


def test_import_reads_stdin_and_skips_known_addresses() -> None:
    add("a@example.org")
    text = "email,topics,hour\na@example.org,diffusion,5\nb@example.org,diffusion,5\n"
    result = cli("subscribers", "import", "-", "--active", stdin=text)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Imported 1; 1 already subscribed.\n"
    everyone = people()
    assert everyone["a@example.org"]["topics"] == ["robotics"]  # the known one is untouched
    assert (everyone["b@example.org"]["hour"], everyone["b@example.org"]["status"]) == (5, "active")


def test_import_of_a_file_that_cannot_be_read_is_one_line() -> None:
    result = cli("subscribers", "import", "missing.csv", "--active")
    assert result.exit_code == 1
    assert one_error_line(result).startswith("Error: missing.csv: cannot read:")
    assert people() == {}


def test_import_with_one_bad_row_imports_nothing() -> None:
    text = "email,topics\ngood@example.org,robotics\nbad-address,robotics\n"
    result = cli("subscribers", "import", "-", "--active", stdin=text)
    assert result.exit_code == 1
    assert one_error_line(result).startswith("Error: CSV import: nothing imported; line 3:")
    assert people() == {}


def test_export_with_a_status_writes_only_those_as_csv() -> None:
    add("a@example.org")
    add("b@example.org", "-t", "diffusion")
    assert cli("subscribers", "pause", "b@example.org").exit_code == 0
    result = cli("subscribers", "export", "--status", "paused")
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.startswith("email,status,queries,topics,")
    assert rows == [row for row in rows if row.startswith("b@example.org,paused,,diffusion,")]
    assert len(rows) == 1


# subscribers invite and links


def test_invite_refuses_someone_who_is_not_pending() -> None:
    add()
    result = cli("subscribers", "invite", ADA, env={"DIGEST_SECRET": SECRET})
    assert result.exit_code == 1
    assert one_error_line(result) == (f"Error: {ADA} is active, not pending: nothing to confirm")


def test_links_prints_signed_urls_under_the_configured_base_url(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[web]\nbase_url = "https://digest.example.org"\n')
    add()
    result = cli("subscribers", "links", ADA, "-c", str(config), env={"DIGEST_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    links = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert set(links) == {"manage", "unsubscribe", "feed", "web"}
    tokens = Tokens(SECRET)
    prefixes = {"manage": "manage", "unsubscribe": "u", "feed": "f", "web": "w"}
    for purpose, url in links.items():
        prefix = f"https://digest.example.org/{prefixes[purpose]}/"
        assert url.startswith(prefix), url
        claims = tokens.read(purpose, url.removeprefix(prefix))
        assert claims.subscriber_id == people()[ADA]["id"] and claims.is_for(ADA)


# without DIGEST_SECRET: what needs a signed link refuses before changing anything

NEEDS_SECRET = [
    ["subscribers", "add", ADA, "-t", "robotics"],
    ["subscribers", "import", "people.csv"],
    ["subscribers", "invite", "bob@example.org"],
    ["subscribers", "links", "bob@example.org"],
    ["preview", "--subscriber", "bob@example.org", "--out", "out"],
]


def _bob_and_a_csv(tmp_path: Path) -> None:
    """A known subscriber and a CSV to import: what each command needs to get that far."""
    (tmp_path / "people.csv").write_text("email,topics\ncarol@example.org,robotics\n")
    add("bob@example.org")


@pytest.mark.parametrize("argv", NEEDS_SECRET, ids=lambda a: " ".join(a[:2]))
def test_without_the_secret_nothing_is_added_sent_or_written(
    tmp_path: Path, argv: list[str]
) -> None:
    _bob_and_a_csv(tmp_path)
    before = people()
    result = cli(*argv)
    assert result.exit_code != 0
    assert one_error_line(result).startswith("Error: DIGEST_SECRET is not set")
    assert people() == before
    assert not (tmp_path / "out").exists() and not (tmp_path / "outbox").exists()


@pytest.mark.parametrize("argv", NEEDS_SECRET, ids=lambda a: " ".join(a[:2]))
def test_without_the_secret_the_exit_code_is_2_as_readme_promises(
    tmp_path: Path, argv: list[str]
) -> None:
    _bob_and_a_csv(tmp_path)
    assert cli(*argv).exit_code == 2


# topics


def test_topics_counts_the_stored_papers_each_preset_matches(tmp_path: Path) -> None:
    config = hf_config(tmp_path)
    empty = cli("topics", "-c", str(config))
    assert empty.exit_code == 0, empty.output
    assert "topics over 0 stored papers" in empty.stdout
    assert cli("collect", "-c", str(config), "--date", "2026-06-12").exit_code == 0
    result = cli("topics", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().splitlines()[-1].startswith("8 topics over 30 stored papers (")
    counts = {
        cells[1].strip(): int(cells[3])
        for line in result.stdout.splitlines()
        if len(cells := line.split("│")) > 4 and cells[3].strip().isdigit()
    }
    assert set(counts) >= {"robotics", "diffusion", "llm-agents", "world-models"}
    assert sum(counts.values()) > 0


def test_topics_refuses_a_topics_file_with_an_unknown_key_naming_file_and_topic(
    tmp_path: Path,
) -> None:
    topics = tmp_path / "topics.toml"
    topics.write_text("[x]\nquery = 'robot'\nlabel = 'X'\n")
    config = write_config(tmp_path, f'topics_path = "{topics}"\n')
    result = cli("topics", "-c", str(config))
    assert result.exit_code == 2
    assert (
        one_error_line(result) == f"Error: {topics}: [x]: unknown key 'label' (known: query, title)"
    )
    assert result.stdout == ""


def test_topics_refuses_a_topic_whose_query_does_not_parse_naming_file_and_topic(
    tmp_path: Path,
) -> None:
    topics = tmp_path / "topics.toml"
    topics.write_text("[x]\nquery = 'a AND'\ntitle = 'X'\n")
    config = write_config(tmp_path, f'topics_path = "{topics}"\n')
    result = cli("topics", "-c", str(config))
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"Error: {topics}: [x]")


# query check


def test_query_check_prints_the_canonical_form_and_what_it_highlights() -> None:
    result = cli("query", "check", 'agent*  -survey title:"World-Models"')
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first.startswith("OK: agent* AND NOT survey AND title:")
    assert second.startswith("highlights: agent*, title:")
    assert "survey" not in second  # a NOT term is never highlighted
    assert result.stderr == ""


@pytest.mark.parametrize("query", ["a AND", "(video", "upvotes>=lots", ""])
def test_query_check_puts_a_caret_under_the_fault_and_exits_1(query: str) -> None:
    result = cli("query", "check", query)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == query and lines[1].strip() == "^"
    assert len(lines[1]) - 1 <= len(query)
    assert result.stdout == ""


# papers


def test_papers_on_an_empty_store_says_how_to_fill_it() -> None:
    result = cli("papers")
    assert result.exit_code == 0
    assert "No papers yet: run `digest collect`." in result.stdout


def test_papers_lists_newest_first_and_says_when_a_search_finds_nothing(tmp_path: Path) -> None:
    config = hf_config(tmp_path)
    assert cli("collect", "-c", str(config), "--date", "2026-06-12").exit_code == 0
    rows = [json.loads(x) for x in cli("papers", "-c", str(config), "--json").stdout.splitlines()]
    assert len(rows) == 20  # the default --limit
    published = [row["published"] for row in rows]
    assert published == sorted(published, reverse=True)
    limited = cli("papers", "-c", str(config), "--json", "--limit", "3")
    assert [json.loads(x)["id"] for x in limited.stdout.splitlines()] == [r["id"] for r in rows[:3]]
    none = cli("papers", "-c", str(config), "zzzqqqxxx")
    assert none.exit_code == 0 and "No papers match." in none.stdout


def test_papers_refuses_a_limit_below_one() -> None:
    result = cli("papers", "--limit", "0")
    assert result.exit_code == 2
    assert "--limit" in result.stderr and result.stdout == ""


# stats


def test_stats_counts_subscribers_and_papers() -> None:
    add("a@example.org")
    add("b@example.org", "-t", "robotics")
    assert cli("subscribers", "pause", "b@example.org").exit_code == 0
    result = cli("stats")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Subscribers: 1 active, 1 paused.  Papers stored: 0.")
    data = json.loads(cli("stats", "--json").stdout)
    assert data["subscribers"] == {"active": 1, "paused": 1}
    assert data["top_topics"] == {"robotics": 2}


def test_stats_refuses_zero_days() -> None:
    result = cli("stats", "--days", "0")
    assert result.exit_code == 2 and "--days" in result.stderr


# refused to start: the config


@pytest.mark.parametrize(
    "command", [["stats"], ["doctor"], ["papers"], ["topics"], ["subscribers", "list"]]
)
def test_a_config_that_does_not_load_is_one_line_and_exit_2(
    tmp_path: Path, command: list[str]
) -> None:
    bad = write_config(tmp_path, "bogus = 1\n")
    result = cli(*command, "-c", str(bad))
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"Error: {bad}: unknown key 'bogus'")
    missing = cli(*command, "-c", str(tmp_path / "missing.toml"))
    assert missing.exit_code == 2
    assert one_error_line(missing).endswith("missing.toml: config file not found")
    assert not (tmp_path / "digest.db").exists()


# doctor


def test_doctor_passes_with_the_outbox_and_a_long_secret(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f'[outbox]\npath = "{tmp_path / "outbox"}"\n'
        '[web]\nbase_url = "https://digest.example.org"\n'
        '[mail]\nfrom = "Digest <digest@example.org>"\npostal_address = "1 Example Street"\n',
    )
    result = cli("doctor", "-c", str(config), env={"DIGEST_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    verdicts = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert verdicts and set(verdicts) <= {"OK", "WARN"}
    assert "secret:" in result.stdout and "database:" in result.stdout
    assert result.stderr == ""


def test_doctor_fails_a_short_secret_and_names_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, f'[outbox]\npath = "{tmp_path / "outbox"}"\n')
    result = cli("doctor", "-c", str(config), env={"DIGEST_SECRET": "short"})
    assert result.exit_code == 1
    assert any(line.startswith("FAIL  secret:") for line in result.stdout.splitlines()), (
        result.stdout
    )
    assert "secret" in one_error_line(result)


# collect


def test_collect_from_a_local_file_stores_it_and_collecting_again_adds_nothing(
    tmp_path: Path,
) -> None:
    config = hf_config(tmp_path)
    first = cli("collect", "-c", str(config), "--date", "2026-06-12")
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    assert "30 papers stored." in first.stdout
    again = cli("collect", "-c", str(config), "--date", "2026-06-12")
    assert again.exit_code == 0
    row = next(line for line in again.stdout.splitlines() if line.startswith("│ hf"))
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[2:6] == ["0", "0", "0", "0"]  # new, updated, skipped, errors
    assert "30 papers stored." in again.stdout


def test_collect_refuses_a_bad_since_date_and_fetches_nothing(tmp_path: Path) -> None:
    config = hf_config(tmp_path)
    result = cli("collect", "-c", str(config), "--since", "yesterday")
    assert result.exit_code == 2
    assert "'yesterday' is not a date like 2026-11-24" in result.stderr
    assert "No papers yet" in cli("papers", "-c", str(config)).stdout


def test_collect_with_a_source_that_fails_exits_1_and_stores_the_others(tmp_path: Path) -> None:
    config = hf_config(
        tmp_path, f'[[sources]]\nname = "gone"\nkind = "feed"\nurl = "{tmp_path / "nope.xml"}"\n'
    )
    result = cli("collect", "-c", str(config), "--date", "2026-06-12")
    assert result.exit_code == 1
    assert one_error_line(result).startswith("Error: gone:")
    assert "30 papers stored." in result.stdout


# preview


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--query", "robot", "--subscriber", ADA], "give exactly one of --query or --subscriber"),
        ([], "give exactly one of --query or --subscriber"),
        (["--query", "robot", "--out", "out"], "--out needs --subscriber"),
        (["--query", "robot", "--edition", "12/06/2026"], "is not a date like 2026-11-24"),
        (["--query", "robot", "--limit", "0"], "--limit"),
    ],
)
def test_preview_refuses_bad_options_as_usage_errors(argv: list[str], message: str) -> None:
    result = cli("preview", *argv)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_preview_of_an_unknown_subscriber_is_one_line_and_exit_1() -> None:
    result = cli("preview", "--subscriber", "who@example.org")
    assert result.exit_code == 1
    assert one_error_line(result).startswith("Error: who@example.org: no such subscriber")


def test_preview_of_a_subscriber_shows_their_matches_and_sends_nothing(tmp_path: Path) -> None:
    config = hf_config(tmp_path, f'[outbox]\npath = "{tmp_path / "outbox"}"\n')
    assert cli("collect", "-c", str(config), "--date", "2026-06-12").exit_code == 0
    add(ADA, "-q", "agent*", "--max", "2")
    result = cli("preview", "-c", str(config), "--subscriber", ADA, "--all")
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())  # rich wraps at the terminal's width
    assert words.startswith(
        "12 of 30 papers match (all stored papers); showing the first 2 (their max papers)."
    )
    assert "query agent*" in result.stdout
    assert not (tmp_path / "outbox").exists()
    shown = json.loads(cli("subscribers", "show", ADA, "--json").stdout)
    assert (shown["deliveries"], shown["papers_sent"]) == (0, 0)


def test_preview_out_writes_the_email_files_for_one_edition(tmp_path: Path) -> None:
    config = hf_config(
        tmp_path,
        '[web]\nbase_url = "https://digest.example.org"\n'
        '[mail]\nfrom = "Digest <digest@example.org>"\npostal_address = "1 Example Street"\n',
    )
    assert cli("collect", "-c", str(config), "--date", "2026-06-12").exit_code == 0
    add(ADA, "-q", "agent*")
    result = cli(
        "preview", "-c", str(config), "--subscriber", ADA, "--all", "--out", "out",
        env={"DIGEST_SECRET": SECRET},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    today = datetime.now(UTC).date().isoformat()
    assert written == [f"{today}-{ADA}.{ext}" for ext in ("eml", "html", "txt")]
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["wrote"] * 3
    assert "https://digest.example.org/u/" in (tmp_path / "out" / written[2]).read_text()
