"""Config: defaults with no file, environment overrides, and errors that name key and file."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from digest.config import _SECTIONS, _TOP_LEVEL_KEYS, SourceConfig, load_config
from digest.errors import ConfigError
from tests.conftest import write_config


def test_defaults_work_with_no_config_file(tmp_path: Path) -> None:
    config = load_config(env={})
    assert config.path is None
    assert config.database.path == "var/digest.db"
    assert [s.kind for s in config.sources] == ["hf", "arxiv"]
    assert config.smtp.host == "" and config.outbox.path == "var/outbox"


def test_environment_overrides_and_secrets_come_only_from_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[database]\npath = "from-file.db"\n')
    env = {"DIGEST_CONFIG": str(path), "DIGEST_DB": "/tmp/x.db", "DIGEST_SECRET": "s3"}
    config = load_config(env=env)
    assert config.path == path.resolve()
    assert config.database.path == "/tmp/x.db"
    assert config.secret == "s3"


def test_local_source_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[sources]]\nname = "a"\nkind = "feed"\nurl = "feeds/a.xml"\n')
    (source,) = load_config(path, env={}).sources
    assert source.url == str(tmp_path / "feeds" / "a.xml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[smtp]\nhots = 'x'\n", "[smtp]: unknown key 'hots'"),
        ("[smtp]\nport = 'x'\n", "[smtp].port: expected int, got str 'x'"),
        ("[smtp]\nsecurity = 'ssl'\n", "[smtp].security: 'ssl' is not starttls, tls or none"),
        ("[collect]\ntimeout = true\n", "[collect].timeout: expected float, got bool"),
        ("[databse]\npath = 'x'\n", "unknown key 'databse'"),
        ("[[sources]]\nname = 'a'\nkind = 'rss'\nurl = 'x'\n", "sources[0].kind: 'rss' is not"),
        ("[[sources]]\nname = 'a'\nurl = 'x'\n", "sources[0]: missing key 'kind'"),
        (
            "[[sources]]\nname='a'\nkind='hf'\nurl='x'\n[[sources]]\nname='a'\nkind='hf'\nurl='y'\n",
            "duplicate name 'a'",
        ),
        ("[smtp\n", "invalid TOML"),
    ],
)
def test_a_wrong_key_or_type_names_the_key_and_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(str(path.resolve())) or str(info.value).startswith(str(path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_the_shipped_configs_load() -> None:
    root = Path(__file__).parent.parent / "config"
    demo = load_config(root / "demo.toml", env={})
    assert [s.name for s in demo.sources] == ["hf", "arxiv-lg", "arxiv-api", "takara"]
    assert all(Path(s.url).is_file() for s in demo.sources)
    example = load_config(root / "digest.example.toml", env={})
    assert example.mail.from_ == "Paper Digest <digest@example.org>"


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+inf"])
@pytest.mark.parametrize(
    "key", ["[collect]\ntimeout", "[smtp]\nrate_per_second", "[alerts]\nfailure_rate"]
)
def test_non_finite_numbers_are_refused_naming_the_key(
    tmp_path: Path, key: str, value: str
) -> None:
    """`timeout = inf` used to hang forever, `nan` to fail later with an unexpected error."""
    path = write_config(tmp_path, f"{key} = {value}\n")
    section, name = key.split("\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert f"{section}.{name}: expected a finite number, got {float(value)!r}" in str(info.value)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("[collect]\ntimeout = 0", "[collect].timeout: must be more than 0, got 0"),
        ("[smtp]\nconcurrency = 0", "[smtp].concurrency: must be more than 0, got 0"),
        ("[collect]\nmax_items = 0", "[collect].max_items: must be more than 0, got 0"),
        ("[smtp]\nrate_per_second = -5", "[smtp].rate_per_second: expected a number >= 0, got -5"),
        ("[web]\nport = 70000", "[web].port: not a TCP port: 70000"),
        ("[smtp]\nbounce_limit = -1", "[smtp].bounce_limit: expected a number >= 0, got -1"),
    ],
)
def test_numbers_that_cannot_work_are_refused_naming_the_key(
    tmp_path: Path, setting: str, message: str
) -> None:
    """A zero timeout or connection count, a negative rate, a port past 65535: refused at load,
    one line with the key, before anything runs."""
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, setting + "\n"), env={})
    assert message in str(info.value)


def _accepted_keys() -> dict[str, set[str]]:
    """Every key the config accepts, walked from the dataclasses themselves."""
    keys = {name: {f.name.rstrip("_") for f in fields(cls)} for name, cls in _SECTIONS.items()}
    keys["sources"] = {f.name for f in fields(SourceConfig)}
    keys[""] = set(_TOP_LEVEL_KEYS)
    return keys


def test_the_example_config_names_every_key_the_config_accepts() -> None:
    path = Path(__file__).parent.parent / "config" / "digest.example.toml"
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    load_config(path, env={})  # and it parses
    # top-level keys are shown commented out: the shipped topics and templates are the default
    commented = set(re.findall(r"^# (\w+) = ", text, flags=re.MULTILINE))
    named = {section: set(data.get(section, {})) for section in _SECTIONS}
    named["sources"] = {key for source in data["sources"] for key in source}
    named[""] = {k for k in data if k not in _SECTIONS and k != "sources"} | commented
    for section, keys in _accepted_keys().items():
        missing = keys - named[section]
        assert not missing, f"config/digest.example.toml lacks [{section}] {sorted(missing)}"


def test_the_bounces_section_and_the_imap_password_from_the_environment(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[bounces]\naddress = "bounces@example.org"\nimap_host = "imap.example.org"\n'
        'imap_user = "bounces"\nimap_tls = "starttls"\nimap_port = 143\nsoft_limit = 3\n'
        "soft_days = 10\ncomplaint_alert_rate = 0.002\n",
    )
    config = load_config(path, env={"DIGEST_IMAP_PASSWORD": "pw"})
    b = config.bounces
    assert (b.address, b.imap_host, b.imap_user, b.imap_tls, b.imap_port) == (
        "bounces@example.org", "imap.example.org", "bounces", "starttls", 143,
    )  # fmt: skip
    assert (b.soft_limit, b.soft_days, b.complaint_alert_rate) == (3, 10, 0.002)
    assert b.hard_alert_rate == 0.02 and b.mailbox_configured
    assert config.imap_password == "pw"
    defaults = load_config(env={})
    assert defaults.bounces.address == "" and not defaults.bounces.mailbox_configured


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('maildir = "m"\nimap_host = "h"\nimap_user = "u"', "set maildir or imap_host, not both"),
        ('imap_host = "h"', "[bounces].imap_user: needed with imap_host"),
        ('imap_tls = "none"', "[bounces].imap_tls: 'none' is not tls or starttls"),
        ('address = "bounces"', "[bounces].address: 'bounces' is not local@domain"),
        ('address = "b+x@example.org"', "without a +tag"),
        ("soft_limit = 0", "[bounces].soft_limit: must be more than 0"),
        ("imap_port = 0", "[bounces].imap_port: not a TCP port"),
        ("complaint_alert_rate = -1", "[bounces].complaint_alert_rate: expected a number >= 0"),
    ],
)
def test_a_bounces_setting_that_cannot_work_is_refused_naming_the_key(
    tmp_path: Path, setting: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, f"[bounces]\n{setting}\n"), env={})
    assert message in str(info.value)


def test_the_webhook_settings_take_a_list_of_topics_and_secrets_only_from_the_environment(
    tmp_path: Path,
) -> None:
    topic = "arn:aws:sns:eu-west-1:123456789012:digest-ses"
    path = write_config(tmp_path, f'[bounces]\nsns_topics = ["{topic}"]\npostmark_user = "pm"\n')
    env = {"DIGEST_POSTMARK_PASSWORD": "pw", "DIGEST_MAILGUN_SIGNING_KEY": "key"}
    config = load_config(path, env=env)
    assert (config.bounces.sns_topics, config.bounces.postmark_user) == ((topic,), "pm")
    assert (config.postmark_password, config.mailgun_signing_key) == ("pw", "key")
    defaults = load_config(env={})
    assert defaults.bounces.sns_topics == () and defaults.postmark_password == ""
    assert defaults.mailgun_signing_key == ""


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('sns_topics = "arn:aws:sns:eu-west-1:1:t"', "[bounces].sns_topics: expected a list of"),
        ('sns_topics = ["arn:aws:sns:eu-west-1:1:t", 3]', "expected a list of strings"),
        ('sns_topics = ["digest-ses"]', "[bounces].sns_topics: 'digest-ses' is not an SNS topic"),
        ('postmark_password = "pw"', "[bounces]: unknown key 'postmark_password'"),
    ],
)
def test_a_webhook_setting_that_cannot_work_is_refused_naming_the_key(
    tmp_path: Path, setting: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, f"[bounces]\n{setting}\n"), env={})
    assert message in str(info.value)
