"""Loading the TOML config and the environment into frozen dataclasses.

The only module that reads files of configuration or `os.environ`. Every error names the key
and the file, so a typo is one line to fix.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast, get_origin, get_type_hints

from digest.errors import ConfigError
from digest.models import Topic

SOURCE_KINDS = ("hf", "arxiv", "feed")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SourceConfig:
    """One place papers come from. `url` may be a local file path (recordings, tests)."""

    name: str
    kind: str
    url: str
    enabled: bool = True
    timeout: float | None = None


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the SQLite file lives; DIGEST_DB overrides it (tests, a second instance)."""

    path: str = "var/digest.db"


@dataclass(frozen=True)
class CollectConfig:
    """How politely and how defensively sources are fetched."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    max_retry_after: float = 120.0
    max_bytes: int = 20_000_000
    max_items: int = 10_000  # items kept per source and run; the rest are cut and counted
    concurrency: int = 4
    user_agent: str = "digest/0.1 (+https://github.com/digest; paper digest mailer)"


@dataclass(frozen=True)
class MailConfig:
    """What every email says about its sender: the headers mailbox providers and the law
    expect (From, List-Id, List-Unsubscribe, a postal address), and the DKIM key to sign with.
    `from_` is the TOML key `from` (a Python keyword)."""

    from_: str = "Paper Digest <digest@example.org>"
    reply_to: str = ""
    postal_address: str = ""
    list_id: str = "digest.example.org"
    no_matches: str = "skip"  # skip | note: a short "nothing new today" email saying why
    unsubscribe_mailto: str = ""  # e.g. unsubscribe@example.org, for List-Unsubscribe
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_key_file: str = ""  # the PEM private key; the file is the secret, keep it 0600
    feedback_id: str = ""  # sender id in Gmail's Feedback-ID header; empty: no header


@dataclass(frozen=True)
class RecommendConfig:
    """How many papers outside a reader's filters are suggested from what they liked."""

    count: int = 3  # "Recommended for you" papers per email; 0 turns them off
    min_score: float = 0.05  # a paper less similar than this to a reader's profile is not shown


@dataclass(frozen=True)
class SmtpConfig:
    """The relay and how hard to push it: pace, retries within a run, and when a 4xx or 5xx
    answer about an address stops further tries. The password comes from
    DIGEST_SMTP_PASSWORD, never the file. An empty `host` writes to the outbox instead."""

    host: str = ""
    port: int = 587
    security: str = "starttls"
    username: str = ""
    concurrency: int = 4
    rate_per_second: float = 20.0
    timeout: float = 30.0
    max_attempts: int = 4  # tries within one run for 4xx replies and network errors
    backoff: float = 2.0  # first retry after ~2 s, doubling, with jitter
    retry_later_minutes: int = 30  # then left pending for a later run
    give_up_after: int = 12  # 4xx replies about the address, over all runs, before failing
    bounce_limit: int = 3  # permanent (5xx) failures before a subscriber is `bounced`
    workers: int = 1  # processes that build and send, one shard each (digest.shards)


@dataclass(frozen=True)
class OutboxConfig:
    """The maildir that takes every message as a .eml file when no SMTP host is configured."""

    path: str = "var/outbox"


@dataclass(frozen=True)
class WebConfig:
    """`digest serve`: where it listens, the public URL its links use, and the limits that
    keep the signup form from being used to mail strangers."""

    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    trust_forwarded: bool = False  # honour X-Forwarded-For/-Proto only behind your own proxy
    confirm_hours: int = 48  # how long a confirmation link works
    purge_pending_days: int = 7  # unconfirmed signups are removed after this
    signups_per_ip_per_hour: int = 20
    confirmations_per_address_per_day: int = 5


@dataclass(frozen=True)
class AlertsConfig:
    """One email to the admin when something needs a person, never one per failure."""

    admin_email: str = ""
    source_failures: int = 3  # runs in a row a source may fail before an alert
    failure_rate: float = 0.2  # share of a run's deliveries that failed or were deferred


IMAP_SECURITY = ("tls", "starttls")


@dataclass(frozen=True)
class BouncesConfig:
    """The VERP envelope sender and the mailbox its bounces reach (issue 14). Off while
    `address` is empty; the mailbox is a Maildir or an IMAP folder, never both."""

    address: str = ""  # e.g. bounces@example.org: MAIL FROM becomes bounces+TOKEN@example.org
    maildir: str = ""  # where the MTA delivers the bounce address (new/, cur/, tmp/)
    imap_host: str = ""  # or an IMAP mailbox, password in DIGEST_IMAP_PASSWORD
    imap_port: int = 993
    imap_user: str = ""
    imap_tls: str = "tls"  # tls (implicit, port 993) | starttls (port 143); never plain text
    imap_folder: str = "INBOX"
    soft_limit: int = 5  # soft bounces within soft_days that make a subscriber `bounced`
    soft_days: int = 30
    complaint_alert_rate: float = 0.001  # a day's complaints / sends above this: an alert
    hard_alert_rate: float = 0.02  # a day's hard bounces / sends above this: an alert
    # provider webhooks (digest serve): each is off until its credentials are configured
    sns_topics: tuple[str, ...] = ()  # TopicArns of SES notifications we subscribed /hooks/ses to
    postmark_user: str = ""  # basic-auth user of /hooks/postmark; DIGEST_POSTMARK_PASSWORD

    @property
    def mailbox_configured(self) -> bool:
        """Whether there is a mailbox to read (`digest bounces`, the end of `digest run`)."""
        return bool(self.maildir or self.imap_host)


@dataclass(frozen=True)
class Config:
    """Everything a command needs, resolved: relative source paths are made absolute."""

    path: Path | None = None
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    sources: tuple[SourceConfig, ...] = ()
    collect: CollectConfig = field(default_factory=CollectConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    web: WebConfig = field(default_factory=WebConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    bounces: BouncesConfig = field(default_factory=BouncesConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    topics_path: str = str(PROJECT_ROOT / "config" / "topics.toml")
    templates_dir: str = str(PROJECT_ROOT / "templates")
    secret: str = ""
    old_secrets: tuple[str, ...] = ()
    smtp_password: str = ""
    imap_password: str = ""
    postmark_password: str = ""
    mailgun_signing_key: str = ""

    def source(self, name: str) -> SourceConfig:
        """The configured source of that name (`digest collect --source NAME`).

        Raises:
            ConfigError: no source has that name; the message lists the known ones.
        """
        for src in self.sources:
            if src.name == name:
                return src
        known = ", ".join(s.name for s in self.sources) or "none configured"
        raise ConfigError(f"no source named {name!r} (known: {known})")


DEFAULT_SOURCES = (
    SourceConfig("hf", "hf", "https://huggingface.co/api/daily_papers"),
    SourceConfig("arxiv", "arxiv", "https://rss.arxiv.org/rss/cs.CV+cs.LG+cs.AI+cs.CL+cs.RO"),
)

_SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "collect": CollectConfig,
    "mail": MailConfig,
    "smtp": SmtpConfig,
    "outbox": OutboxConfig,
    "web": WebConfig,
    "alerts": AlertsConfig,
    "bounces": BouncesConfig,
    "recommend": RecommendConfig,
}
_TOP_LEVEL_KEYS = {"topics_path": str, "templates_dir": str}


def _key_name(f: str) -> str:
    return f.rstrip("_")


def _check_value(value: Any, expected: Any, where: str) -> Any:
    """Accept the TOML value if it fits the annotated type; ints pass for floats; a
    `tuple[str, ...]` takes a TOML array of strings."""
    if get_origin(expected) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    allowed = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}
    options = [
        t
        for t in (str, int, float, bool)
        if t == expected or t in getattr(expected, "__args__", ())
    ]
    for t in options:
        if not isinstance(value, allowed[t]) or (t in (int, float) and isinstance(value, bool)):
            continue
        if t is str:
            return value
        number = cast(float, value)
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        if number < 0:
            raise ConfigError(f"{where}: expected a number >= 0, got {value!r}")
        return float(number) if t is float else value
    names = " or ".join(t.__name__ for t in options) or str(expected)
    raise ConfigError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")


# Zero would mean "never time out", "no connection" or "keep nothing": refused, naming the key.
_AT_LEAST_ONE = frozenset(
    {
        "timeout", "concurrency", "max_bytes", "max_items", "max_attempts", "soft_limit",
        "soft_days", "workers",
    }
)


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {_key_name(f.name): f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        kwargs[known[key]] = _check_value(value, hints[known[key]], f"{where}.{key}")
        if key in _AT_LEAST_ONE and kwargs[known[key]] is not None and kwargs[known[key]] <= 0:
            raise ConfigError(f"{where}.{key}: must be more than 0, got {value!r}")
        if key in ("port", "imap_port") and not 0 < value < 65536:
            raise ConfigError(f"{where}.{key}: not a TCP port: {value!r}")
    try:
        return cls(**kwargs)
    except TypeError as ex:
        raise ConfigError(f"{where}: {ex}") from ex


def _source(data: Any, index: int, file: str, base: Path) -> SourceConfig:
    where = f"{file}: sources[{index}]"
    for required in ("name", "kind", "url"):
        if not isinstance(data, Mapping) or required not in data:
            raise ConfigError(f"{where}: missing key {required!r}")
    src: SourceConfig = _build(SourceConfig, data, where)
    if src.kind not in SOURCE_KINDS:
        raise ConfigError(f"{where}.kind: {src.kind!r} is not one of {', '.join(SOURCE_KINDS)}")
    for key, value in (("name", src.name), ("url", src.url)):
        if not value.strip():  # an empty url would become the config file's folder
            raise ConfigError(f"{where}.{key}: must not be empty, got {value!r}")
    if not src.url.startswith(("http://", "https://")):
        path = Path(src.url).expanduser()
        if not path.is_absolute():
            path = base / path
        src = SourceConfig(src.name, src.kind, str(path), src.enabled, src.timeout)
    return src


def parse_config(data: Mapping[str, Any], path: Path | None, env: Mapping[str, str]) -> Config:
    """Build a Config from parsed TOML and an environment mapping (tests pass their own).

    Raises:
        ConfigError: an unknown key, a value of the wrong type or range; names key and file.
    """
    file = str(path) if path else "<defaults>"
    base = path.parent if path else Path.cwd()
    kwargs: dict[str, Any] = {"path": path}
    for key, value in data.items():
        if key in _SECTIONS:
            kwargs[key] = _build(_SECTIONS[key], value, f"{file}: [{key}]")
        elif key == "sources":
            if not isinstance(value, list):
                raise ConfigError(f"{file}: sources: expected [[sources]] tables")
            kwargs["sources"] = tuple(_source(v, i, file, base) for i, v in enumerate(value))
            names = [s.name for s in kwargs["sources"]]
            dupes = {n for n in names if names.count(n) > 1}
            if dupes:
                raise ConfigError(f"{file}: sources: duplicate name {sorted(dupes)[0]!r}")
        elif key in _TOP_LEVEL_KEYS:
            value = _check_value(value, str, f"{file}: {key}")
            kwargs[key] = str(value if Path(value).is_absolute() else base / value)
        else:
            known = ", ".join([*_SECTIONS, "sources", *_TOP_LEVEL_KEYS])
            raise ConfigError(f"{file}: unknown key {key!r} (known: {known})")
    kwargs.setdefault("sources", DEFAULT_SOURCES)
    if env.get("DIGEST_DB"):
        kwargs["database"] = DatabaseConfig(path=env["DIGEST_DB"])
    kwargs["secret"] = env.get("DIGEST_SECRET", "")
    kwargs["old_secrets"] = tuple(
        s.strip() for s in env.get("DIGEST_OLD_SECRETS", "").split(",") if s.strip()
    )
    kwargs["smtp_password"] = env.get("DIGEST_SMTP_PASSWORD", "")
    kwargs["imap_password"] = env.get("DIGEST_IMAP_PASSWORD", "")
    kwargs["postmark_password"] = env.get("DIGEST_POSTMARK_PASSWORD", "")
    kwargs["mailgun_signing_key"] = env.get("DIGEST_MAILGUN_SIGNING_KEY", "")
    _check_bounces(kwargs.get("bounces", BouncesConfig()), file)
    if not 0 <= kwargs.get("recommend", RecommendConfig()).count <= 50:
        raise ConfigError(f"{file}: [recommend].count: must be between 0 and 50")
    mail = kwargs.get("mail", MailConfig())
    if mail.no_matches not in ("skip", "note"):
        raise ConfigError(f"{file}: [mail].no_matches: {mail.no_matches!r} is not skip or note")
    smtp = kwargs.get("smtp", SmtpConfig())
    if smtp.security not in ("starttls", "tls", "none"):
        raise ConfigError(
            f"{file}: [smtp].security: {smtp.security!r} is not starttls, tls or none"
        )
    return Config(**kwargs)


def _check_bounces(bounces: BouncesConfig, file: str) -> None:
    """One mailbox, a TLS mode that exists, an address that can carry a VERP token."""
    where = f"{file}: [bounces]"
    if bounces.maildir and bounces.imap_host:
        raise ConfigError(f"{where}: set maildir or imap_host, not both")
    if bounces.imap_host and not bounces.imap_user:
        raise ConfigError(f"{where}.imap_user: needed with imap_host")
    if bounces.imap_tls not in IMAP_SECURITY:
        raise ConfigError(f"{where}.imap_tls: {bounces.imap_tls!r} is not tls or starttls")
    for topic in bounces.sns_topics:
        if not topic.startswith("arn:") or ":sns:" not in topic:
            raise ConfigError(f"{where}.sns_topics: {topic[:120]!r} is not an SNS topic ARN")
    local, at, domain = bounces.address.rpartition("@")
    if bounces.address and (not local or not at or "." not in domain or "+" in local):
        raise ConfigError(
            f"{where}.address: {bounces.address!r} is not local@domain (without a +tag)"
        )


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """`path`, else $DIGEST_CONFIG, else ./config/digest.toml if present, else built-in defaults.

    Raises:
        ConfigError: the file is missing, unreadable, not TOML, or holds a bad value.
    """
    env = os.environ if env is None else env
    chosen = path or env.get("DIGEST_CONFIG") or None
    if chosen is None and Path("config/digest.toml").is_file():
        chosen = "config/digest.toml"
    if chosen is None:
        return parse_config({}, None, env)
    file = Path(chosen).resolve()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as ex:
        raise ConfigError(f"{chosen}: config file not found") from ex
    except tomllib.TOMLDecodeError as ex:
        raise ConfigError(f"{chosen}: invalid TOML: {ex}") from ex
    except (OSError, UnicodeDecodeError) as ex:
        raise ConfigError(f"{chosen}: cannot read config: {ex}") from ex
    return parse_config(data, file, env)


def load_topics(path: str | Path) -> dict[str, Topic]:
    """The named presets of topics.toml: `[name]` tables with `query` and an optional `title`.

    Raises:
        ConfigError: the file is missing or not TOML, or a table is not a preset.
    """
    file = Path(path)
    shipped = Path(__file__).resolve().parent / "presets" / "topics.toml"
    if not file.is_file() and str(file) == Config.topics_path and shipped.is_file():
        file = shipped  # an installed wheel carries the presets inside the package
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as ex:
        raise ConfigError(f"{file}: topics file not found (set topics_path in the config)") from ex
    except tomllib.TOMLDecodeError as ex:
        raise ConfigError(f"{file}: invalid TOML: {ex}") from ex
    topics: dict[str, Topic] = {}
    for name, table in data.items():
        where = f"{file}: [{name}]"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table with a query")
        unknown = set(table) - {"query", "title"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: query, title)")
        query = _check_value(table.get("query"), str, f"{where}.query")
        title = _check_value(table.get("title", name), str, f"{where}.title")
        topics[name] = Topic(name=name, title=title, query=query)
    return topics
