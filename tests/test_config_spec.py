"""The configuration's specification: where the file comes from, what each key defaults to,
which values each accepts, what the environment overrides, and the one-line error that names
the file and the key for everything else. Real files in tmp_path, no user's config."""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.config import (
    _SECTIONS,
    DEFAULT_SOURCES,
    Config,
    load_config,
    load_topics,
    parse_config,
)
from digest.errors import ConfigError
from tests.conftest import write_config

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "config" / "digest.example.toml"
FILE = Path("/etc/digest/digest.toml")


def _error(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, text), env={})
    return str(info.value)


def _parse(data: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    return parse_config(data, FILE, env or {})


# Where the configuration comes from


def test_the_example_file_states_every_default_except_the_two_a_deployment_must_set() -> None:
    """config/digest.example.toml is the documentation of the defaults: a key whose value
    there differs from the built-in one would mislead whoever copies it."""
    builtin, example = load_config(env={}), load_config(EXAMPLE, env={})
    differ = {
        (section, f.name)
        for section, cls in _SECTIONS.items()
        for f in fields(cls)
        if getattr(getattr(builtin, section), f.name) != getattr(getattr(example, section), f.name)
    }
    assert differ == {("mail", "postal_address"), ("web", "base_url")}


@pytest.mark.parametrize(
    ("section", "key", "default"),
    [
        ("database", "path", "var/digest.db"),
        ("collect", "timeout", 30.0),
        ("collect", "retries", 3),
        ("collect", "max_bytes", 20_000_000),
        ("collect", "max_items", 10_000),
        ("mail", "no_matches", "skip"),
        ("smtp", "host", ""),
        ("smtp", "port", 587),
        ("smtp", "security", "starttls"),
        ("smtp", "bounce_limit", 3),
        ("outbox", "path", "var/outbox"),
        ("web", "confirm_hours", 48),
        ("web", "trust_forwarded", False),
        ("alerts", "admin_email", ""),
        ("alerts", "source_failures", 3),
        ("bounces", "imap_tls", "tls"),
        ("bounces", "sns_topics", ()),
        ("recommend", "count", 3),
        ("recommend", "min_score", 0.05),
    ],
)
def test_with_no_file_each_key_has_its_documented_default(
    section: str, key: str, default: object
) -> None:
    config = load_config(env={})
    value = getattr(getattr(config, section), key)
    assert value == default and type(value) is type(default)


def test_with_no_file_the_sources_are_hf_and_arxiv_and_no_secret_is_set() -> None:
    config = load_config(env={})
    assert config.sources == DEFAULT_SOURCES
    assert (config.secret, config.old_secrets, config.smtp_password) == ("", (), "")


def test_an_explicit_path_wins_over_the_environment_and_the_working_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "digest.toml").write_text("[smtp]\nport = 1\n", encoding="utf-8")
    (tmp_path / "env.toml").write_text("[smtp]\nport = 2\n", encoding="utf-8")
    (tmp_path / "given.toml").write_text("[smtp]\nport = 3\n", encoding="utf-8")
    env = {"DIGEST_CONFIG": str(tmp_path / "env.toml")}
    assert load_config(tmp_path / "given.toml", env=env).smtp.port == 3
    assert load_config(env=env).smtp.port == 2
    assert load_config(env={}).smtp.port == 1  # ./config/digest.toml (cwd is tmp_path)
    (tmp_path / "config" / "digest.toml").unlink()
    assert load_config(env={}).smtp.port == 587 and load_config(env={}).path is None


def test_an_empty_digest_config_variable_falls_back_to_the_working_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "digest.toml").write_text("[web]\nport = 9000\n", encoding="utf-8")
    assert load_config(env={"DIGEST_CONFIG": ""}).web.port == 9000


def test_the_loaded_config_remembers_its_file_as_an_absolute_path(tmp_path: Path) -> None:
    write_config(tmp_path, "")
    config = load_config("digest.toml", env={})
    assert config.path == tmp_path / "digest.toml" and config.path.is_absolute()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "cannot read config"),
        (lambda p: p.write_bytes(b'[mail]\nfrom = "\xff\xfe"\n'), "cannot read config"),
        (lambda p: p.write_text("port = = 3\n"), "invalid TOML"),
    ],
)
def test_a_file_that_cannot_be_read_as_toml_is_one_line_naming_it(
    tmp_path: Path, make: Any, message: str
) -> None:
    path = tmp_path / "broken.toml"
    make(path)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)


# The environment


def test_digest_db_overrides_the_files_database_path_and_an_empty_one_does_not() -> None:
    data = {"database": {"path": "from-file.db"}}
    assert _parse(data, {"DIGEST_DB": "/srv/other.db"}).database.path == "/srv/other.db"
    assert _parse(data, {"DIGEST_DB": ""}).database.path == "from-file.db"


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("DIGEST_SECRET", "secret"),
        ("DIGEST_SMTP_PASSWORD", "smtp_password"),
        ("DIGEST_IMAP_PASSWORD", "imap_password"),
        ("DIGEST_POSTMARK_PASSWORD", "postmark_password"),
        ("DIGEST_MAILGUN_SIGNING_KEY", "mailgun_signing_key"),
    ],
)
def test_each_secret_comes_from_its_own_variable_and_from_nowhere_else(
    variable: str, attribute: str
) -> None:
    assert getattr(_parse({}, {variable: "v4lue"}), attribute) == "v4lue"
    others = {v: "x" for v in ("DIGEST_SECRET", "DIGEST_SMTP_PASSWORD") if v != variable}
    assert getattr(_parse({}, others), attribute) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("old1", ("old1",)),
        ("old1,old2", ("old1", "old2")),
        (" old1 , old2 ,", ("old1", "old2")),
        (",,", ()),
        ("", ()),
    ],
)
def test_old_secrets_are_comma_separated_trimmed_and_never_empty(
    value: str, expected: tuple[str, ...]
) -> None:
    assert _parse({}, {"DIGEST_OLD_SECRETS": value}).old_secrets == expected


@pytest.mark.parametrize(
    ("section", "key"),
    [("smtp", "password"), ("bounces", "imap_password"), ("web", "secret")],
)
def test_a_secret_written_in_the_file_is_refused_as_an_unknown_key(section: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[{section}\]: unknown key '{key}'"):
        _parse({section: {key: "hunter2"}})


# Types and ranges


def test_an_integer_given_for_a_decimal_key_becomes_a_float() -> None:
    config = _parse({"collect": {"timeout": 5, "backoff": 0}, "recommend": {"min_score": 1}})
    assert (config.collect.timeout, config.collect.backoff) == (5.0, 0.0)
    assert type(config.collect.timeout) is float and type(config.recommend.min_score) is float


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"smtp": {"port": 25.0}}, "[smtp].port: expected int, got float 25.0"),
        ({"web": {"trust_forwarded": "yes"}}, "[web].trust_forwarded: expected bool, got str"),
        ({"web": {"confirm_hours": True}}, "[web].confirm_hours: expected int, got bool True"),
        ({"mail": {"from": 3}}, "[mail].from: expected str, got int 3"),
        ({"mail": {"from_": "a@b.org"}}, "[mail]: unknown key 'from_'"),
        ({"smtp": 3}, "[smtp]: expected a table, got int"),
        ({"smtp": [1]}, "[smtp]: expected a table, got list"),
        ({"sources": "hf"}, "sources: expected [[sources]] tables"),
        ({"sources": ["hf"]}, "sources[0]: missing key 'name'"),
        ({"topics_path": 3}, "topics_path: expected str, got int 3"),
        ({"recommend": {"count": 51}}, "[recommend].count: must be between 0 and 50"),
        ({"recommend": {"count": -1}}, "[recommend].count: expected a number >= 0"),
        ({"mail": {"no_matches": "silent"}}, "[mail].no_matches: 'silent' is not skip or note"),
        ({"collect": {"max_bytes": 0}}, "[collect].max_bytes: must be more than 0, got 0"),
        ({"bounces": {"soft_days": 0}}, "[bounces].soft_days: must be more than 0, got 0"),
        ({"smtp": {"max_attempts": 0}}, "[smtp].max_attempts: must be more than 0, got 0"),
        ({"collect": {"retries": -1}}, "[collect].retries: expected a number >= 0, got -1"),
    ],
)
def test_a_value_of_the_wrong_type_or_range_names_the_file_and_the_key(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(data)
    assert str(info.value).startswith(f"{FILE}: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        {"recommend": {"count": 0}},
        {"recommend": {"count": 50}},
        {"mail": {"no_matches": "note"}},
        {"collect": {"retries": 0, "backoff": 0}},
        {"smtp": {"rate_per_second": 0, "bounce_limit": 0, "security": "tls"}},
        {"smtp": {"security": "none"}},
        {"alerts": {"failure_rate": 0}},
        {"bounces": {"imap_tls": "starttls", "sns_topics": []}},
    ],
)
def test_the_edges_of_each_range_are_accepted(data: dict[str, Any]) -> None:
    config = _parse(data)
    for section, values in data.items():
        for key, value in values.items():
            got = getattr(getattr(config, section), key)
            assert got == (tuple(value) if isinstance(value, list) else value)


@given(port=st.integers(min_value=-(2**40), max_value=2**40))
def test_a_port_is_accepted_exactly_when_it_is_a_tcp_port(port: int) -> None:
    for section, key in (("smtp", "port"), ("web", "port"), ("bounces", "imap_port")):
        if 0 < port < 65536:
            assert getattr(getattr(_parse({section: {key: port}}), section), key) == port
        else:
            with pytest.raises(ConfigError, match=rf"\[{section}\]\.{key}: "):
                _parse({section: {key: port}})


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_KEYS = [(s, f.name.rstrip("_")) for s, cls in _SECTIONS.items() for f in fields(cls)]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(_KEYS), value=_VALUES)
def test_any_value_for_any_key_loads_or_is_one_line_naming_file_and_key(
    where: tuple[str, str], value: object
) -> None:
    """Whatever a file holds, loading ends in a Config or one ConfigError line; never an
    exception from deeper down, never a message that leaves out where to look."""
    section, key = where
    try:
        config = _parse({section: {key: value}})
    except ConfigError as ex:
        text = str(ex)
        assert text.startswith(f"{FILE}: [{section}]") and "\n" not in text
        # cross-key checks name the key too; an unusable address names its own key
        assert key in text or "maildir or imap_host" in text
    else:
        assert dataclasses.is_dataclass(config)


# Sources


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/feed.xml", "https://example.org/feed.xml"),
        ("http://example.org/feed.xml", "http://example.org/feed.xml"),
        ("feeds/a.xml", "/etc/digest/feeds/a.xml"),
        ("/srv/recorded/a.xml", "/srv/recorded/a.xml"),
        ("~/a.xml", str(Path("~/a.xml").expanduser())),
    ],
)
def test_a_source_url_is_kept_if_http_and_otherwise_a_file_beside_the_config(
    url: str, expected: str
) -> None:
    (source,) = _parse({"sources": [{"name": "a", "kind": "feed", "url": url}]}).sources
    assert source.url == expected


def test_a_source_keeps_its_switch_and_its_own_timeout_as_a_float() -> None:
    data = {"name": "a", "kind": "hf", "url": "https://x.org", "enabled": False, "timeout": 7}
    (source,) = _parse({"sources": [data]}).sources
    assert (source.enabled, source.timeout) == (False, 7.0)
    assert type(source.timeout) is float


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": 0}, "sources[0].timeout: must be more than 0, got 0"),
        ({"enabled": "no"}, "sources[0].enabled: expected bool, got str 'no'"),
        ({"cron": "daily"}, "sources[0]: unknown key 'cron'"),
        ({"kind": "json"}, "sources[0].kind: 'json' is not one of hf, arxiv, feed"),
    ],
)
def test_a_bad_source_entry_names_its_index_and_key(extra: dict[str, Any], message: str) -> None:
    source = {"name": "a", "kind": "hf", "url": "https://x.org", **extra}
    with pytest.raises(ConfigError) as info:
        _parse({"sources": [source]})
    assert str(info.value).startswith(f"{FILE}: sources[0]") and message in str(info.value)


@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.parametrize("key", ["name", "url"])
def test_an_empty_source_name_or_url_is_refused_naming_the_key(key: str, blank: str) -> None:
    """An empty url would become the config file's folder and fail only at collect time."""
    source = {"name": "a", "kind": "feed", "url": "https://x.org/feed", key: blank}
    with pytest.raises(ConfigError) as info:
        _parse({"sources": [source]})
    assert str(info.value) == f"{FILE}: sources[0].{key}: must not be empty, got {blank!r}"


def test_an_empty_sources_list_means_no_sources_not_the_defaults() -> None:
    config = _parse({"sources": []})
    assert config.sources == ()
    with pytest.raises(ConfigError, match=r"no source named 'hf' \(known: none configured\)"):
        config.source("hf")


def test_a_source_is_found_by_name_and_an_unknown_name_lists_the_known_ones() -> None:
    config = load_config(env={})
    assert config.source("arxiv").kind == "arxiv"
    with pytest.raises(ConfigError, match=r"no source named 'rss' \(known: hf, arxiv\)"):
        config.source("rss")


# Top-level paths and the topics file


def test_topics_and_templates_paths_are_relative_to_the_config_file() -> None:
    config = _parse({"topics_path": "topics.toml", "templates_dir": "/srv/tpl"})
    assert config.topics_path == "/etc/digest/topics.toml"
    assert config.templates_dir == "/srv/tpl"


def test_the_shipped_topics_load_with_a_query_and_a_title_each() -> None:
    topics = load_topics(load_config(env={}).topics_path)
    assert topics and all(t.query and t.title for t in topics.values())
    assert all(name == t.name for name, t in topics.items())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('agents = "x"\n', "[agents]: expected a table with a query"),
        ("[agents]\nquery = 'x'\ncolour = 'red'\n", "[agents]: unknown key 'colour'"),
        ("[agents]\ntitle = 'Agents'\n", "[agents].query: expected str, got NoneType None"),
        ("[agents]\nquery = 3\n", "[agents].query: expected str, got int 3"),
        ("[agents\n", "invalid TOML"),
    ],
)
def test_a_topics_file_that_is_not_presets_names_the_file_and_the_topic(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_topics(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_a_topic_without_a_title_is_titled_by_its_name(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text("[agents]\nquery = 'agent*'\n[rl]\nquery='rl'\ntitle='RL'\n")
    topics = load_topics(path)
    assert (topics["agents"].title, topics["rl"].title) == ("agents", "RL")
    assert topics["agents"].query == "agent*"


def test_a_missing_topics_file_says_which_key_points_at_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"topics file not found \(set topics_path"):
        load_topics(tmp_path / "none.toml")
