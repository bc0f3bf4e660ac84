"""A real, private Postfix on 127.0.0.1 for the bounce tests: its own config directory,
queue, data directory, log file and port (`postfix -c DIR`); the system's /etc/postfix and
any system instance are never touched.

It relays what it accepts to a downstream SMTP server (the aiosmtpd recorder), except for
recipients at REJECTING_DOMAIN, which a transport map sends to `error:5.1.1`, and at
FULL_DOMAIN (`retry:4.2.2`, given up at once as the queue lifetime is 0): Postfix has already
said 250 to those, so it writes a real DSN to the envelope sender. The VERP bounce
address's domain is a virtual mailbox domain whose mail lands in a Maildir.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REJECTING_DOMAIN = "bounce.example.com"  # 5.1.1: a hard bounce, after the 250
FULL_DOMAIN = "full.example.com"  # 4.2.2, then given up at once: a soft bounce
BOUNCE_DOMAIN = "bounces.digest.test"
BOUNCE_ADDRESS = f"bounces@{BOUNCE_DOMAIN}"
MAILBOX_UID = 65534  # nobody: the virtual delivery agent refuses uids below 100

MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
syslog_name = postfix-digest-test
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.digest.test
mydomain = digest.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject
local_recipient_maps =
smtpd_reject_unlisted_recipient = no
alias_maps =
alias_database =
relayhost =
default_transport = smtp:[127.0.0.1]:{downstream}
transport_maps = texthash:{root}/config/transport
virtual_mailbox_domains = {bounce_domain}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/config/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
recipient_delimiter = +
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
smtpd_tls_security_level = none
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0h
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
biff = no
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_postfix() -> None:
    """Install Debian's postfix when missing, answering "No configuration" so the package
    neither writes /etc/postfix/main.cf nor starts a system instance."""
    if shutil.which("postfix") or Path("/usr/sbin/postfix").exists():
        return
    subprocess.run(
        ["debconf-set-selections"],
        input=b"postfix postfix/main_mailer_type select No configuration\n",
        check=True,
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "postfix"]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(install, check=True, env=env)


@dataclass
class PrivatePostfix:
    root: Path
    port: int

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "bounces"

    @property
    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["postfix", "-c", str(self.config), *args], capture_output=True, text=True, timeout=60
        )

    def dsns(self) -> list[Path]:
        found: list[Path] = []
        for sub in ("new", "cur"):
            folder = self.maildir / sub
            if folder.is_dir():
                found.extend(p for p in folder.iterdir() if p.is_file())
        return sorted(found)

    def queue_is_empty(self) -> bool:
        run = subprocess.run(
            ["postqueue", "-c", str(self.config), "-j"], capture_output=True, text=True, timeout=30
        )
        return run.returncode == 0 and not run.stdout.strip()


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]
) -> None:
    """Poll a condition up to `timeout`: Postfix delivers asynchronously, and its queue
    manager has no hook to wait on. Fails with the tail of Postfix's log."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; maillog:\n{log()[-4000:]}")
        time.sleep(0.05)


@contextmanager
def running_postfix(downstream_port: int) -> Iterator[PrivatePostfix]:
    """Start a private Postfix relaying to 127.0.0.1:`downstream_port`; stop and remove it
    afterwards. Lives under /tmp, not pytest's tmp_path, whose 0700 parents the unprivileged
    delivery agent could not traverse."""
    ensure_postfix()
    root = Path(tempfile.mkdtemp(prefix="digest-postfix-"))
    root.chmod(0o755)
    instance = PrivatePostfix(root, free_port())
    for sub in ("config", "queue", "data"):
        (root / sub).mkdir()
    (root / "mail").mkdir()
    os.chown(root / "mail", MAILBOX_UID, MAILBOX_UID)
    shutil.chown(root / "data", "postfix")
    (instance.config / "main.cf").write_text(
        MAIN_CF.format(
            root=root, downstream=downstream_port, bounce_domain=BOUNCE_DOMAIN, uid=MAILBOX_UID
        )
    )
    (instance.config / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{instance.port}"))
    (instance.config / "transport").write_text(
        f"{REJECTING_DOMAIN} error:5.1.1 no such user\n{FULL_DOMAIN} retry:4.2.2 mailbox full\n"
    )
    (instance.config / "vmailbox").write_text(f"{BOUNCE_ADDRESS} bounces/\n")
    started = instance.postfix("start")
    try:
        if started.returncode != 0:
            raise AssertionError(
                f"private postfix did not start: {started.stdout}{started.stderr}\n{instance.log}"
            )
        wait_until(lambda: listening(instance.port), 30, "postfix to listen", lambda: instance.log)
        yield instance
    finally:
        instance.postfix("stop")
        shutil.rmtree(root, ignore_errors=True)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
