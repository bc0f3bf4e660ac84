"""Recommendations wired end to end: seeds and More/Less feedback in a real SQLite file, the
daily job's "Recommended for you" section received by a real SMTP server, the CLI commands."""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from typer.testing import CliRunner

from digest.cli import app
from digest.config import load_config, load_topics
from digest.models import Subscriber
from digest.pipeline import Pipeline, RunReport
from digest.plan import Recommender
from digest.store import SignalKind, Store
from digest.tokens import Tokens
from digest.web import create_app
from tests.conftest import DATA, HF_JUNE, app_config
from tests.smtp_server import Recorder
from tests.test_render import html_urls, text_urls

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
SECRET = "test-secret-0123456789abcdefghijklmnop"
BASE = "https://digest.example.org"
ARXIV_API = "arxiv_api_query_cs.LG_OR_cs.AI_2026-04-30.xml"
EVOARENA = "2606.13681"  # "EvoArena: Tracking Memory Evolution for Robust LLM Agents ..."
WEB_AGENT = "2606.10423"  # "WebChallenger: A Reliable and Efficient Generalist Web Agent"


def config_with(tmp_path: Path, port: int | None, *sources: tuple[str, str, Path]) -> Path:
    return app_config(tmp_path, list(sources), port, smtp={"timeout": 5, "backoff": 0.01})


def run(config_path: Path, now: datetime) -> RunReport:
    config = load_config(config_path, env={"DIGEST_SECRET": SECRET})
    with Store(config.database.path) as store:
        pipeline = Pipeline(config, store, load_topics(config.topics_path), now)
        return asyncio.run(pipeline.run())


def texts_by_recipient(recorder: Recorder) -> dict[str, str]:
    out = {}
    for received in recorder.received:
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        body = msg.get_body(("plain",))
        assert body is not None
        out[received.recipients[0]] = body.get_content()
    return out


def two_days(tmp_path: Path, port: int, people: list[Subscriber]) -> tuple[Path, Path]:
    """Day one collects the HF papers (what readers like); day two brings arXiv's."""
    day_one = config_with(tmp_path, port, ("hf", "hf", DATA / HF_JUNE))
    with Store(tmp_path / "digest.db") as store:
        store.add_subscribers_bulk(people, NOW, "test")
    run(day_one, NOW - timedelta(days=1))
    day_two = config_with(
        tmp_path, port, ("hf", "hf", DATA / HF_JUNE), ("api", "arxiv", DATA / ARXIV_API)
    )
    return day_one, day_two


def test_feedback_and_seeds_bring_a_recommended_section_whose_why_names_the_liked_paper(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    people = [
        Subscriber("ada@example.org", status="active", queries=["agent"], hour=0),
        Subscriber("seedy@example.org", status="active", hour=0),
        Subscriber("gone@example.org", status="unsubscribed", hour=0),
    ]
    _, day_two = two_days(tmp_path, port, people)
    first = {r.recipients[0] for r in recorder.received}
    assert first == {"ada@example.org"}  # the seed-only reader had nothing yet
    recorder.received.clear()
    with Store(tmp_path / "digest.db") as store:
        store.record_signals(1, [EVOARENA], SignalKind.MORE, NOW, "email")
        store.record_signals(2, [WEB_AGENT], SignalKind.SEED, NOW, "cli")
        store.record_signals(3, [WEB_AGENT], SignalKind.SEED, NOW, "cli")
    report = run(day_two, NOW)
    texts = texts_by_recipient(recorder)
    assert set(texts) == {"ada@example.org", "seedy@example.org"}
    assert report.plan.recommended == 2 and not report.plan.recommend_errors
    ada = texts["ada@example.org"]
    assert "== Recommended for you (" in ada
    assert "Like EvoArena: Tracking Memory Evolution" in ada
    assert "More like this: https://digest.example.org/fb/more/" in ada
    for received in recorder.received:  # feedback links in both parts, each as often
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        html_part, text_part = msg.get_body(("html",)), msg.get_body(("plain",))
        assert html_part is not None and text_part is not None
        html_links = html_urls(html_part.get_content())
        assert html_links == text_urls(text_part.get_content())
        assert any("/fb/less/" in url for url in html_links)
    seedy = texts["seedy@example.org"]
    assert "Like WebChallenger" in seedy and "recommended for you" in seedy
    with Store(tmp_path / "digest.db") as store:
        assert set(store.reader_profiles([1, 2, 3])) == {1, 2}  # unsubscribed: never scored
        row = store.delivery(1, "2026-06-12")
        assert row is not None
        recs = row.recommended
        assert recs and all(r.paper_id in row.papers for r in recs)
        assert EVOARENA not in row.papers  # liked before: never recommended back
        sent = {r[0] for r in store.db.execute("select paper_id from sent_papers")}
        assert {r.paper_id for r in recs} <= sent


def test_a_reader_without_signals_gets_the_email_exactly_as_before(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    people = [Subscriber("ada@example.org", status="active", queries=["agent"], hour=0)]
    _, day_two = two_days(tmp_path, port, people)
    recorder.received.clear()
    run(day_two, NOW)
    text = texts_by_recipient(recorder)["ada@example.org"]
    assert "Recommended for you" not in text
    with Store(tmp_path / "digest.db") as store:
        assert store.latest_vectorizer() is None  # no one to recommend to: nothing fitted


def test_recommend_zero_turns_the_section_off_for_that_reader(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    people = [Subscriber("ada@example.org", status="active", queries=["agent"], hour=0,
                         recommend=0)]  # fmt: skip
    _, day_two = two_days(tmp_path, port, people)
    recorder.received.clear()
    with Store(tmp_path / "digest.db") as store:
        store.record_signals(1, [EVOARENA], SignalKind.MORE, NOW, "email")
    run(day_two, NOW)
    assert "Recommended for you" not in texts_by_recipient(recorder)["ada@example.org"]


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, [*args, "--config", str(config)], env={"DIGEST_SECRET": SECRET}
    )
    return result.exit_code, result.stdout, result.stderr


def collected(tmp_path: Path) -> Path:
    """A database holding the day's HF and arXiv papers, and one active reader with a query."""
    people = [Subscriber("ada@example.org", status="active", queries=["agent"], hour=0)]
    _, day_two = two_days(tmp_path, None, people)  # type: ignore[arg-type]
    run(day_two, NOW)
    return day_two


def test_feedback_command_records_more_or_less_and_refuses_unknown_papers(
    tmp_path: Path,
) -> None:
    config = collected(tmp_path)
    code, stdout, _ = cli(config, "feedback", "ada@example.org", EVOARENA, "--more")
    assert code == 0 and "More like" in stdout
    code, _, _ = cli(config, "feedback", "ada@example.org", EVOARENA, "--less")
    assert code == 0
    code, _, stderr = cli(config, "feedback", "ada@example.org", "9999.99999", "--more")
    assert code == 1 and stderr.count("\n") == 1 and "no such paper" in stderr
    code, _, _ = cli(config, "feedback", "ada@example.org", EVOARENA, "--more", "--less")
    assert code == 2
    with Store(tmp_path / "digest.db") as store:
        assert [(s.paper_id, s.kind) for s in store.reader_signals(1)] == [
            (EVOARENA, SignalKind.LESS)
        ]


def test_seed_command_resolves_bibtex_and_counts_what_it_could_not_use(tmp_path: Path) -> None:
    config = collected(tmp_path)
    bib = tmp_path / "mine.bib"
    bib.write_text(
        "@article{a, title={{WebChallenger}: A Reliable and Efficient Generalist Web Agent},"
        ' author={M{\\"u}ller, J.}}\n'
        "@misc{b, title={Something}, eprint={2606.13681}, archivePrefix={arXiv}}\n"
        "@misc{c, title={Not here}, eprint={2101.00001}}\n",
        encoding="utf-8",
    )
    code, stdout, _ = cli(config, "subscribers", "seed", "ada@example.org", str(bib))
    assert code == 0, stdout
    assert "2 seed paper(s) added; 1 not found among stored papers: 2101.00001" in stdout
    with Store(tmp_path / "digest.db") as store:
        assert {s.paper_id for s in store.reader_signals(1)} == {WEB_AGENT, EVOARENA}


def test_hostile_seed_files_get_one_clear_line(tmp_path: Path) -> None:
    config = collected(tmp_path)
    huge = tmp_path / "huge.bib"
    with huge.open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    code, _, stderr = cli(config, "subscribers", "seed", "ada@example.org", str(huge))
    assert code == 1 and stderr.count("\n") == 1 and "over the 5 MB limit" in stderr
    sheet = tmp_path / "zotero.csv"
    sheet.write_text(
        'Key,Title,Url,DOI\nA1,"=HYPERLINK(""http://evil"")",,\n'
        "A2,EvoArena,https://arxiv.org/abs/2606.13681v2,\n",
        encoding="utf-8",
    )
    code, stdout, _ = cli(config, "subscribers", "seed", "ada@example.org", str(sheet))
    assert code == 0 and stdout.count("\n") == 1
    assert "1 seed paper(s) added" in stdout and "skipped" in stdout
    code, _, stderr = cli(config, "subscribers", "seed", "nobody@example.org", str(sheet))
    assert code == 1 and "no such subscriber" in stderr


def test_preview_json_puts_recommendations_in_their_own_section(tmp_path: Path) -> None:
    config = collected(tmp_path)
    with Store(tmp_path / "digest.db") as store:
        bob = Subscriber("bob@example.org", status="active", queries=["agent"])
        sid = store.add_subscriber(bob, NOW, "test").id or 0
        store.record_signals(sid, [EVOARENA], SignalKind.MORE, NOW, "test")
    code, stdout, stderr = cli(
        config, "preview", "--subscriber", "bob@example.org", "--edition", "2026-06-12", "--json"
    )
    assert code == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert {r["section"] for r in rows} == {"matches", "recommended"}
    recommended = [r for r in rows if r["section"] == "recommended"]
    assert all(r["why"].startswith("Like EvoArena") for r in recommended)
    assert not {r["id"] for r in recommended} & {r["id"] for r in rows if r["section"] == "matches"}


def test_a_reader_may_be_added_for_recommendations_alone(tmp_path: Path) -> None:
    config = collected(tmp_path)
    code, _, stderr = cli(config, "subscribers", "add", "seedy@example.org", "--active")
    assert code == 1 and "give at least one query or topic" in stderr
    code, _, _ = cli(
        config, "subscribers", "add", "seedy@example.org", "--active", "--recommend", "5"
    )
    assert code == 0
    code, _, _ = cli(config, "subscribers", "edit", "ada@example.org", "--recommend", "0")
    assert code == 0
    with Store(tmp_path / "digest.db") as store:
        assert store.get_subscriber("seedy@example.org").recommend == 5  # type: ignore[union-attr]
        assert store.get_subscriber("ada@example.org").recommend == 0  # type: ignore[union-attr]


def feedback_url(text: str, kind: str) -> str:
    found = re.search(rf"https://digest\.example\.org(/fb/{kind}/\S+)", text)
    assert found is not None, text
    return found.group(1)


async def test_a_feedback_link_shows_a_button_and_only_its_post_records_then_undo(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    people = [Subscriber("ada@example.org", status="active", queries=["agent"], hour=0)]
    day_one, _ = await asyncio.to_thread(two_days, tmp_path, port, people)
    text = texts_by_recipient(recorder)["ada@example.org"]
    more = feedback_url(text, "more")
    config = load_config(day_one, env={"DIGEST_SECRET": SECRET})
    app = create_app(config, load_topics(config.topics_path), clock=lambda: NOW)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        page = await client.get(more)
        assert page.status_code == 200 and f'action="{more}"' in page.text
        assert "<button" in page.text and "More like this" in page.text
        with Store(tmp_path / "digest.db") as store:
            assert store.reader_signals(1) == []  # a scanner's GET records nothing
            Recommender(config, store, NOW).vectorizer()  # as the first recommending run does
        done = await client.post(more)
        assert done.status_code == 200 and 'id="similar"' in done.text
        liked = re.search(
            r'href="https://digest\.example\.org(/manage/[^"?]+)\?view=liked"', done.text
        )
        assert liked is not None
        manage = liked.group(1)
        listing = await client.get(manage + "?view=liked")
        with Store(tmp_path / "digest.db") as store:
            (signal,) = store.reader_signals(1)
        assert signal.kind is SignalKind.MORE and html.escape(signal.title) in listing.text
        csrf = client.cookies["digest_csrf"]
        form = {"csrf": csrf, "action": "undo", "paper": signal.paper_id}
        undone = await client.post(manage, data=form)
        assert undone.status_code == 200 and "Undone." in undone.text
        seeded = await client.post(
            manage, data={"csrf": csrf, "action": "seed", "seeds": f"arXiv:{WEB_AGENT}\n2101.00001"}
        )
        assert "1 seed paper(s) added; 1 not found among stored papers: 2101.00001" in seeded.text
        forged = await client.get(more[:-3] + "xyz")
        assert forged.status_code == 400
    with Store(tmp_path / "digest.db") as store:
        assert [(s.paper_id, s.kind) for s in store.reader_signals(1)] == [
            (WEB_AGENT, SignalKind.SEED)
        ]


async def test_the_preferences_form_sets_the_recommend_count_and_an_empty_box_keeps_it(
    tmp_path: Path,
) -> None:
    config = load_config(config_with(tmp_path, None), env={"DIGEST_SECRET": SECRET})
    with Store(tmp_path / "digest.db") as store:
        ada = Subscriber("ada@example.org", status="active", queries=["agent"], recommend=4)
        store.add_subscriber(ada, NOW, "test")
    token = Tokens(SECRET).make("manage", 1, "ada@example.org")
    app = create_app(config, load_topics(config.topics_path), clock=lambda: NOW)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    form = {"queries": "agent", "cadence": "daily", "weekday": "mon", "hour": "8", "tz": "UTC"}
    form["max_papers"] = "10"
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        await client.get(f"/manage/{token}")
        form["csrf"] = client.cookies["digest_csrf"]
        kept = await client.post(f"/manage/{token}", data={**form, "recommend": ""})
        assert kept.status_code == 200, kept.text
        with Store(tmp_path / "digest.db") as store:
            assert store.get_subscriber(1).recommend == 4  # type: ignore[union-attr]
        await client.post(f"/manage/{token}", data={**form, "recommend": "0"})
    with Store(tmp_path / "digest.db") as store:
        assert store.get_subscriber(1).recommend == 0  # type: ignore[union-attr]


def test_a_followed_author_s_new_paper_comes_first_in_the_section_even_without_a_profile(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    people = [Subscriber("ada@example.org", status="active", queries=["zzznothing"], hour=0)]
    _, day_two = two_days(tmp_path, port, people)
    with Store(tmp_path / "digest.db") as store:
        store.follow_authors(1, ["  gongbo   zhang "], NOW)
        assert store.followed_authors(1) == ["gongbo zhang"]
    run(day_two, NOW)
    text = texts_by_recipient(recorder)["ada@example.org"]
    assert "== Recommended for you (" in text and "By gongbo zhang, whom you follow" in text


def test_a_damaged_vocabulary_is_fitted_again_and_said_in_one_loud_line(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    people = [Subscriber("ada@example.org", status="active", queries=["agent"], hour=0)]
    _, day_two = two_days(tmp_path, port, people)
    recorder.received.clear()
    with Store(tmp_path / "digest.db") as store:
        store.record_signals(1, [EVOARENA], SignalKind.MORE, NOW, "email")
        store.save_vectorizer(b"12345678", b"not an npz file", 30, NOW)
    report = run(day_two, NOW)
    assert report.send.sent == 1 and report.failed  # the email went out; exit 1 says why
    (line,) = report.plan.recommend_errors
    assert line.startswith("recommend: the saved vocabulary does not load")
    assert line.endswith("; fitted a new one")
    assert "recommendations: recommend: the saved vocabulary" in report.summary()
    assert "Recommended for you" in texts_by_recipient(recorder)["ada@example.org"]
