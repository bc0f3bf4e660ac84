"""The pipe's limit, for bench/send.py and bench/daily.py: three SMTP servers on 127.0.0.1 and
Postfix's C client `smtp-source` pushing the same prepared messages over the same number of
connections. Servers: an aiosmtpd sink in its own process, a private Postfix with a discard
transport (its own config, queue and port; the system's Postfix is never touched) and Postfix's
`smtp-sink`. Also how a bench measures a process: CPU (user+sys) and its own peak memory.
Runs no digest code: only processes, sockets and files.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
SERVERS = ("aiosmtpd", "postfix", "smtp-sink")
SENDER = "digest@example.org"
RECIPIENT = "limit@example.org"
PER_INVOCATION = 250  # messages smtp-source sends per file before the next file reconnects

AIOSMTPD_SINK = r"""
import asyncio, socket, sys
from aiosmtpd.controller import Controller

class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 2.0.0 Ok: queued"

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
controller = Controller(Sink(), hostname="127.0.0.1", port=port, decode_data=False,
                        data_size_limit=10_000_000)
controller.start()
print(port, flush=True)
sys.stdin.read()
controller.stop()
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = limit.bench.invalid
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
default_transport = discard:bench
relay_transport = discard:bench
local_transport = discard:bench
virtual_transport = discard:bench
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtputf8_enable = yes
message_size_limit = 50000000
biff = no
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
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
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass(slots=True)
class Server:
    name: str
    port: int
    folder: Path | None = None  # Postfix's own directory: its queue drains between runs


@dataclass(slots=True)
class Limit:
    """What smtp-source achieved: its wall time and its own CPU (user+sys, all processes)."""

    messages: int
    seconds: float
    cpu_s: float
    bytes: int
    distinct: int  # how many of the prepared messages (files) it sent
    machine_cpu_s: float = 0.0  # every process's, during the push (the server's and its own)

    @property
    def server_cpu_ms_per_email(self) -> float:
        return max(0.0, self.machine_cpu_s - self.cpu_s) * 1000 / self.messages

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_ms_per_email(self) -> float:
        return self.cpu_s * 1000 / self.messages


def require_tools(servers: Sequence[str]) -> None:
    """Stop with one line when a tool is missing: a bench without its limit would mislead."""
    needed = [SMTP_SOURCE]
    needed += [SMTP_SINK] if "smtp-sink" in servers else []
    needed += [POSTFIX] if "postfix" in servers else []
    missing = [tool for tool in needed if not os.access(tool, os.X_OK)]
    if missing:
        raise SystemExit(
            f"bench: {', '.join(missing)} missing: install Debian's postfix package "
            "(`make bench` does it: tools only, no system mail server)"
        )
    if "postfix" in servers and os.geteuid() != 0:
        raise SystemExit("bench: a private Postfix needs root here; pass --servers without it")


def parse_servers(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown or not names:
        raise SystemExit(f"bench: unknown server {unknown}; choose among {', '.join(SERVERS)}")
    return names


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> float:
    """CPU seconds every core of this machine has been busy (user, nice, system, irq, softirq,
    steal; /proc/stat), for what a server spends: a run's machine CPU less its client's. On
    a quiet machine, that is the server's own (Postfix's several daemons included)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # less idle and iowait
        return busy / os.sysconf("SC_CLK_TCK")
    return 0.0


def ceiling_per_s(client_ms: float, server_ms: float) -> float:
    """The most messages a second this machine's cores can carry when client and server
    both run on them: every core busy, nothing waiting."""
    return (os.cpu_count() or 1) * 1000 / max(client_ms + server_ms, 1e-9)


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not ru_maxrss: on Linux a child started with
    fork/vfork + exec inherits its parent's maxrss, so a bench's worker would report the
    bench's own memory (VmHWM belongs to the process's current address space only)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_banner(port: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} on 127.0.0.1:{port} gave no 220 banner in {timeout}s")
        time.sleep(0.05)


@contextlib.contextmanager
def aiosmtpd_sink() -> Iterator[Server]:
    sink = subprocess.Popen(
        [sys.executable, "-c", AIOSMTPD_SINK], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        yield Server("aiosmtpd", int(sink.stdout.readline()))  # type: ignore[union-attr]
    finally:
        sink.stdin.close()  # type: ignore[union-attr]
        sink.wait(timeout=60)


@contextlib.contextmanager
def smtp_sink() -> Iterator[Server]:
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen([SMTP_SINK, *user, f"127.0.0.1:{port}", "256"])
    try:
        wait_for_banner(port, "smtp-sink")
        yield Server("smtp-sink", port)
    finally:
        sink.terminate()
        sink.wait(timeout=30)


def postfix_cmd(folder: Path, *args: str) -> None:
    config = folder / "etc"
    done = subprocess.run([POSTFIX, "-c", str(config), *args], capture_output=True, text=True)
    if done.returncode != 0:
        log = folder / "maillog"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise SystemExit(
            f"bench: postfix -c {config} {' '.join(args)} failed ({done.returncode}): "
            f"{(done.stderr or done.stdout).strip()}\n{tail}"
        )


@contextlib.contextmanager
def postfix_discard() -> Iterator[Server]:
    """A private Postfix on 127.0.0.1 that accepts, queues and discards every message. Its
    config directory holds only main.cf and master.cf (Postfix wants it root's alone); the
    queue and data directories sit beside it, in /tmp: the user postfix must reach them."""
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-postfix-"))
    folder.chmod(0o755)
    config = folder / "etc"
    for part in ("etc", "queue", "data"):
        (folder / part).mkdir(mode=0o755)
    shutil.chown(folder / "data", "postfix")
    port = free_port()
    (config / "main.cf").write_text(MAIN_CF.format(folder=folder))
    (config / "master.cf").write_text(MASTER_CF.format(port=port))
    postfix_cmd(folder, "start")
    try:
        wait_for_banner(port, "postfix")
        yield Server("postfix", port, folder)
    finally:
        postfix_cmd(folder, "stop")
        status = [POSTFIX, "-c", str(folder / "etc"), "status"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if subprocess.run(status, capture_output=True).returncode != 0:
                break  # the master has let go of its lock: stopped
            time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def start(name: str) -> Iterator[Server]:
    starters = {"aiosmtpd": aiosmtpd_sink, "smtp-sink": smtp_sink, "postfix": postfix_discard}
    with starters[name]() as server:
        yield server


def drain(server: Server, timeout: float = 300.0) -> None:
    """Wait until Postfix has discarded what it queued, so it does not slow the next run."""
    if server.folder is None:
        return
    queue = server.folder / "queue"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = sum(
            1
            for part in ("maildrop", "incoming", "active", "deferred", "hold")
            for _ in (queue / part).rglob("*")
            if _.is_file()
        )
        if not waiting:
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: Postfix in {server.folder} still has mail queued after {timeout}s")


def write_messages(messages: Sequence[bytes], folder: Path, files: int) -> list[tuple[Path, int]]:
    """An evenly spaced sample of the prepared messages, one file each, with LF line endings:
    smtp-source appends CRLF to each line and dot-stuffs, which gives back the same bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    count = max(1, min(files, len(messages)))
    picked = [messages[i * len(messages) // count] for i in range(count)]
    out = []
    for i, data in enumerate(picked):
        path = folder / f"message-{i:03d}.eml"
        path.write_bytes(data.replace(b"\r\n", b"\n"))
        out.append((path, len(data)))
    return out


def smtp_source(
    server: Server, files: Sequence[tuple[Path, int]], messages: int, connections: int
) -> Limit:
    """Push `messages` over `connections` persistent connections, spread across the files."""
    per_connection = [
        messages // connections + (k < messages % connections) for k in range(connections)
    ]
    scripts = []
    total_bytes = 0
    turn = 0
    for count in per_connection:
        steps = []
        while count > 0:
            path, size = files[turn % len(files)]
            turn += 1
            n = min(count, PER_INVOCATION)
            count -= n
            total_bytes += n * size
            envelope = ["-f", SENDER, "-t", RECIPIENT]
            command = [SMTP_SOURCE, "-d", "-s", "1", "-m", str(n), *envelope, "-F", str(path)]
            steps.append(shlex.join([*command, f"127.0.0.1:{server.port}"]))
        if steps:
            scripts.append(" && ".join(steps))
    cpu_before = cpu_seconds(resource.RUSAGE_CHILDREN)
    machine_before = machine_cpu_seconds()
    started = time.perf_counter()
    running = [
        subprocess.Popen(["sh", "-c", s], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for s in scripts
    ]
    errors = [p.communicate()[1] for p in running]
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before
    failed = [(p.returncode, e) for p, e in zip(running, errors, strict=True) if p.returncode]
    if failed:
        code, err = failed[0]
        raise SystemExit(
            f"bench: smtp-source to {server.name} failed ({code}): {err.decode(errors='replace')}"
        )
    drain(server)
    machine = machine_cpu_seconds() - machine_before
    return Limit(messages, seconds, cpu, total_bytes, min(turn, len(files)), machine)
