"""The bounce mailbox as a specification (digest/bounces/mailbox.py): what is read (new and
unseen messages, oldest first, capped), how a message is marked so no run reads it again
(Maildir: cur/ with the Seen flag; IMAP: \\Seen), and what is refused. Maildirs are real
folders; IMAP is pymap, a real server, over STARTTLS (the fixture of tests/test_bounces.py)."""

from __future__ import annotations

import imaplib
import itertools
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.bounces.mailbox import (
    READ_CAP,
    Imap,
    ImapSecurity,
    ImapSettings,
    MailboxError,
    Maildir,
    maildir_flags,
    text,
)
from tests.test_bounces import imap_server  # noqa: F401  (a fixture: pymap over STARTTLS)

USER, PASSWORD = "bounces", "imap-secret"


def maildir(root: Path, *subs: str) -> Path:
    for sub in subs or ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


BASE_TIME = time.time()


def put(box: Path, relative: str, data: bytes, age: float = 0.0) -> Path:
    path = box / relative
    path.write_bytes(data)
    if age:
        os.utime(path, (BASE_TIME - age, BASE_TIME - age))
    return path


# ---------------------------------------------------------------- Maildir: flags and checks


@pytest.mark.parametrize(
    ("name", "flags"),
    [("1.host", ""), ("1.host:2,", ""), ("1.host:2,S", "S"), ("1.host:2,FRS", "FRS"),
     ("1.host:1,S", ""), ("a:2,b:2,S", "b:2,S")],
)  # fmt: skip
def test_flags_are_what_follows_the_info_separator(name: str, flags: str) -> None:
    assert maildir_flags(name) == flags


@given(st.text(max_size=30))
def test_reading_flags_never_raises_and_needs_the_separator(name: str) -> None:
    flags = maildir_flags(name)
    assert flags == "" or ":2," in name


@pytest.mark.parametrize(("present", "missing"), [(("cur", "tmp"), "new"), (("new", "tmp"), "cur")])
def test_a_folder_without_new_or_cur_is_not_a_maildir(
    tmp_path: Path, present: tuple[str, ...], missing: str
) -> None:
    box = maildir(tmp_path / "box", *present)
    with pytest.raises(MailboxError, match=f"no {missing}/ folder"):
        Maildir(box).check()
    with pytest.raises(MailboxError):
        list(Maildir(box).unread())


def test_tmp_is_not_needed_to_read(tmp_path: Path) -> None:
    box = maildir(tmp_path / "box", "new", "cur")
    put(box, "new/1.host", b"one")
    assert [s.data for s in Maildir(box).unread()] == [b"one"]


# ---------------------------------------------------------------- Maildir: what is read


def test_messages_are_read_oldest_first_across_new_and_cur(tmp_path: Path) -> None:
    box = maildir(tmp_path / "box")
    put(box, "new/c.host", b"newest", age=10)
    put(box, "cur/b.host:2,", b"middle", age=100)
    put(box, "new/a.host", b"oldest", age=1000)
    read = list(Maildir(box).unread())
    assert [s.data for s in read] == [b"oldest", b"middle", b"newest"]
    assert [s.key for s in read] == ["new/a.host", "cur/b.host:2,", "new/c.host"]


def test_same_age_messages_are_read_in_name_order(tmp_path: Path) -> None:
    box = maildir(tmp_path / "box")
    for name in ("b.host", "a.host", "c.host"):
        put(box, f"new/{name}", name.encode(), age=50)
    assert [s.key for s in Maildir(box).unread()] == ["new/a.host", "new/b.host", "new/c.host"]


def test_hidden_files_folders_and_links_are_not_messages(tmp_path: Path) -> None:
    box = maildir(tmp_path / "box")
    put(box, "new/.hidden", b"hidden")
    (box / "new" / "folder").mkdir()
    outside = put(tmp_path, "secret.txt", b"secret")
    (box / "new" / "link.host").symlink_to(outside)
    put(box, "new/real.host", b"real")
    assert [s.data for s in Maildir(box).unread()] == [b"real"]


@pytest.mark.parametrize(("name", "read"), [("x:2,", True), ("x:2,F", True), ("x:2,RS", False),
                                             ("x:2,S", False), ("x", True)])  # fmt: skip
def test_a_message_in_cur_is_read_unless_it_is_flagged_seen(
    tmp_path: Path, name: str, read: bool
) -> None:
    box = maildir(tmp_path / "box")
    put(box, f"cur/{name}", b"m")
    assert bool(list(Maildir(box).unread())) is read


@pytest.mark.parametrize(("size", "kept"), [(0, 0), (10, 10), (READ_CAP, READ_CAP),
                                            (READ_CAP + 1, READ_CAP)])  # fmt: skip
def test_a_message_is_read_whole_up_to_the_cap(tmp_path: Path, size: int, kept: int) -> None:
    box = maildir(tmp_path / "box")
    put(box, "new/m.host", b"x" * size)
    (stored,) = Maildir(box).unread()
    assert len(stored.data) == kept


def test_a_message_taken_by_another_reader_meanwhile_is_skipped(tmp_path: Path) -> None:
    box = maildir(tmp_path / "box")
    put(box, "new/a.host", b"a", age=100)
    second = put(box, "new/b.host", b"b", age=50)
    put(box, "new/c.host", b"c", age=10)
    reading = Maildir(box).unread()
    assert next(reading).data == b"a"
    second.unlink()  # another `digest bounces` handled it
    assert [s.data for s in reading] == [b"c"]


def test_reading_alone_marks_nothing(tmp_path: Path) -> None:
    box = maildir(tmp_path / "box")
    put(box, "new/a.host", b"a")
    list(Maildir(box).unread())
    assert [s.key for s in Maildir(box).unread()] == ["new/a.host"]
    assert os.listdir(box / "cur") == []


# ---------------------------------------------------------------- Maildir: marking


@pytest.mark.parametrize(
    ("key", "file"),
    [("new/a.host", "a.host:2,S"), ("cur/a.host:2,", "a.host:2,S"),
     ("cur/a.host:2,RF", "a.host:2,FRS"), ("cur/a.host:2,T", "a.host:2,ST")],
)  # fmt: skip
def test_marking_moves_to_cur_adding_seen_to_the_flags_kept_sorted(
    tmp_path: Path, key: str, file: str
) -> None:
    box = maildir(tmp_path / "box")
    put(box, key, b"m")
    Maildir(box).mark_done(key)
    assert os.listdir(box / "cur") == [file] and os.listdir(box / "new") == []


@pytest.mark.parametrize(
    "key", ["tmp/a.host", "new/", "new/a/b", "a.host", "../new/a.host", "new/../../x", ""]
)
def test_a_key_that_is_not_a_message_of_new_or_cur_is_refused(tmp_path: Path, key: str) -> None:
    box = maildir(tmp_path / "box")
    with pytest.raises(MailboxError, match="is not a message key"):
        Maildir(box).mark_done(key)


def test_marking_a_message_that_vanished_unhandled_is_an_error(tmp_path: Path) -> None:
    box = maildir(tmp_path / "box")
    with pytest.raises(MailboxError, match="vanished"):
        Maildir(box).mark_done("new/gone.host")


def test_a_marked_message_is_never_read_again_and_the_others_still_are(tmp_path: Path) -> None:
    box = maildir(tmp_path / "box")
    put(box, "new/a.host", b"a", age=20)
    put(box, "new/b.host", b"b", age=10)
    first = next(Maildir(box).unread())
    Maildir(box).mark_done(first.key)
    assert [s.data for s in Maildir(box).unread()] == [b"b"]


# ---------------------------------------------------------------- IMAP against pymap


def settings(
    port: int, folder: str, security: ImapSecurity = ImapSecurity.STARTTLS
) -> ImapSettings:
    return ImapSettings("127.0.0.1", USER, PASSWORD, port, folder=folder, timeout=10,
                        security=security)  # fmt: skip


def deliver(port: int, context: ssl.SSLContext, folder: str, *messages: tuple[bytes, str]) -> None:
    """What the MTA does: append messages (with flags) to a folder of the mailbox."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as mta:
        mta.starttls(context)
        mta.login(USER, PASSWORD)
        mta.create(folder)
        for data, flags in messages:
            mta.append(folder, flags, imaplib.Time2Internaldate(time.time()), data)


def message(n: int) -> bytes:
    return f"From: mailer@example.org\r\nSubject: report {n}\r\n\r\nbody {n}\r\n".encode()


FOLDERS = itertools.count(1)


@pytest.fixture
def imap(
    imap_server: tuple[int, ssl.SSLContext],  # noqa: F811
) -> Iterator[tuple[int, ssl.SSLContext, str]]:
    """The server, and a folder of this test's own (the server lives for the module)."""
    port, context = imap_server
    yield port, context, f"Spec{next(FOLDERS)}"


def test_unseen_messages_are_read_in_order_and_keys_carry_the_uidvalidity(
    imap: tuple[int, ssl.SSLContext, str],
) -> None:
    port, context, folder = imap
    deliver(port, context, folder, (message(1), ""), (message(2), ""))
    with Imap(settings(port, folder), context) as box:
        read = list(box.unread())
    assert [s.data.split(b"\r\n")[1] for s in read] == [b"Subject: report 1", b"Subject: report 2"]
    validities = {s.key.split(":")[0] for s in read}
    assert len(validities) == 1 and validities.pop().isdigit()
    uids = [int(s.key.split(":")[1]) for s in read]
    assert uids == sorted(uids) and len(set(uids)) == 2


def test_a_message_a_client_already_read_is_not_ours_to_read(
    imap: tuple[int, ssl.SSLContext, str],
) -> None:
    port, context, folder = imap
    deliver(port, context, folder, (message(1), r"(\Seen)"), (message(2), ""))
    with Imap(settings(port, folder), context) as box:
        assert [b"report 2" in s.data for s in box.unread()] == [True]


def test_reading_without_marking_leaves_the_message_unseen_for_the_next_run(
    imap: tuple[int, ssl.SSLContext, str],
) -> None:
    port, context, folder = imap
    deliver(port, context, folder, (message(1), ""))
    keys = []
    for _ in range(2):  # a run that crashed before marking, then the next run
        with Imap(settings(port, folder), context) as box:
            keys.append([s.key for s in box.unread()])
    assert keys[0] == keys[1] and len(keys[0]) == 1


def test_marking_twice_is_harmless(imap: tuple[int, ssl.SSLContext, str]) -> None:
    port, context, folder = imap
    deliver(port, context, folder, (message(1), ""))
    with Imap(settings(port, folder), context) as box:
        (stored,) = box.unread()
        box.mark_done(stored.key)
        box.mark_done(stored.key)
        assert list(box.unread()) == []


def test_a_key_not_from_this_folders_uidvalidity_is_refused(
    imap: tuple[int, ssl.SSLContext, str],
) -> None:
    port, context, folder = imap
    deliver(port, context, folder, (message(1), ""))
    with Imap(settings(port, folder), context) as box:
        (stored,) = box.unread()
        validity, uid = stored.key.split(":")
        other = str(int(validity) + 1)
        for key in ("", uid, f"{other}:{uid}", f"{validity}:x", f"{validity}:", f":{uid}"):
            with pytest.raises(MailboxError, match="is not from this folder"):
                box.mark_done(key)
        assert [s.key for s in box.unread()] == [stored.key]


def _open_missing_folder(port: int, context: ssl.SSLContext) -> tuple[str, bool]:
    """Open a folder the server does not have: the error, and whether a connection was left
    open (closed here either way, so no socket outlives the test)."""
    box = Imap(settings(port, "NoSuchFolder"), context)
    try:
        with pytest.raises(MailboxError) as caught:
            box.__enter__()
        return str(caught.value), box.connection is not None
    finally:
        box.close()


def test_a_folder_that_does_not_exist_is_a_loud_error_naming_it(
    imap: tuple[int, ssl.SSLContext, str],
) -> None:
    error, _ = _open_missing_folder(imap[0], imap[1])
    assert "cannot open folder 'NoSuchFolder'" in error


def test_a_refused_folder_leaves_no_connection_open(imap: tuple[int, ssl.SSLContext, str]) -> None:
    _, left_open = _open_missing_folder(imap[0], imap[1])
    assert not left_open


def test_a_server_that_is_not_there_is_a_loud_error_naming_it(
    imap: tuple[int, ssl.SSLContext, str],
) -> None:
    closed = ImapSettings("127.0.0.1", USER, PASSWORD, 1, timeout=2, security=ImapSecurity.TLS)
    with pytest.raises(MailboxError, match=r"IMAP 127\.0\.0\.1:1 as bounces"), Imap(closed):
        pass


def test_implicit_tls_to_a_starttls_port_fails_instead_of_sending_in_clear(
    imap: tuple[int, ssl.SSLContext, str],
) -> None:
    port, context, folder = imap
    with pytest.raises(MailboxError), Imap(settings(port, folder, ImapSecurity.TLS), context):
        pass


def test_the_mailbox_is_used_only_inside_with(imap: tuple[int, ssl.SSLContext, str]) -> None:
    port, context, folder = imap
    deliver(port, context, folder, (message(1), ""))
    box = Imap(settings(port, folder), context)
    with pytest.raises(MailboxError, match="not connected"):
        list(box.unread())
    with box:
        (stored,) = box.unread()
    assert box.connection is None
    with pytest.raises(MailboxError, match="not connected"):
        box.mark_done(stored.key)
    box.close()  # closing a closed mailbox is not an error


def test_there_is_no_plain_text_imap() -> None:
    assert {s.value for s in ImapSecurity} == {"tls", "starttls"}
    assert ImapSettings("h", "u", "p").security is ImapSecurity.TLS
    assert ImapSettings("h", "u", "p").port == 993


@pytest.mark.parametrize(
    ("value", "shown"),
    [(b"OK", "OK"), (b"caf\xc3\xa9", "caf\ufffd\ufffd"), ("a \r\n\t b", "a b"), (None, "None"),
     (12, "12")],
)  # fmt: skip
def test_server_answers_become_one_line_of_text(value: object, shown: str) -> None:
    assert text(value) == shown
