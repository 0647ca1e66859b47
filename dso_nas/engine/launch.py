"""``dso-nas launch``: start a ps-lite job (scheduler, servers, workers) and watch it.

MXNet's own ``tools/launch.py`` needs dmlc-core's tracker, which neither the wheel nor the
package index provides; this is the part of it a ``dist_sync`` run needs. Every role is a
process with the ``DMLC_*`` environment: the scheduler and the servers are ``python -c
"import mxnet"`` (importing MXNet with ``DMLC_ROLE=server`` or ``scheduler`` runs that role
until the job ends), the workers run ``COMMAND``. Without a hosts file everything runs on
this machine over loopback; with one, workers and servers are started over ``ssh`` on the
listed hosts, round robin, in the current directory (which every host must see).

The launcher forwards SIGINT/SIGTERM to the workers (they checkpoint together and stop),
and when any process fails it stops all the others - a worker blocked on a dead peer would
otherwise wait for ever - and exits with that process's status.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..errors import UserError
from ..paths import read_text

__all__ = ["Role", "LAUNCH_ENV", "job_roles", "launch", "free_port", "read_hosts", "is_host", "check_launch",
           "launch_line"]

LOG = logging.getLogger("dso_nas")

#: Seconds a process gets to exit after SIGTERM before it is killed.
GRACE_S = 10.0
POLL_S = 0.2


@dataclass
class Role:
    """One process of the job."""

    name: str  # "scheduler", "server 0", "worker 1"
    role: str  # DMLC_ROLE
    host: Optional[str]  # None: this machine
    command: List[str]
    proc: Optional[subprocess.Popen] = None


def free_port() -> int:
    """A TCP port free on this machine now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: A host name (RFC 1123 labels) or an IPv4 address.
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?)*$")
#: The environment variable through which the launcher tells its workers its own command line
#: (their resume hint after a stop names it).
LAUNCH_ENV = "DSO_NAS_LAUNCH"


def is_host(text: str) -> bool:
    """Whether ``text`` is a host name or an IP address (no scheme, port or path)."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(_HOST.match(text))


def read_hosts(path: str) -> List[str]:
    """Hosts of a hosts file: one per line (``host`` or ``user@host``), ``#`` comments and
    blank lines skipped; one line naming the file and line of anything else."""
    hosts = []
    for n, line in enumerate(read_text(path, "hosts file").splitlines(), 1):
        host = line.split("#")[0].strip()
        if host and not is_host(host.rpartition("@")[2]):
            raise UserError(f"hosts file {path} line {n}: {host!r} is not a host name or address")
        if host:
            hosts.append(host)
    if not hosts:
        raise UserError(f"hosts file {path} lists no host")
    return hosts


def check_launch(command: Sequence[str], workers: int, servers: int, port: int, root_uri: Optional[str],
                 local: bool) -> None:
    """One ``UserError`` line for a launch that cannot start: no command, fewer than one worker or
    server, a port outside 0..65535, a root URI that is not a host, a local command not found."""
    if not command:
        raise UserError("launch needs a command after --, e.g. -- dso-nas search --config ... train.kvstore=dist_sync")
    if workers < 1 or servers < 1:
        raise UserError(f"launch needs at least one worker and one server, got --workers {workers} and "
                        f"--servers {servers}")
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be in 0..65535 (0: a free one), got {port}")
    if root_uri is not None and not is_host(root_uri):
        raise UserError(f"--root-uri must be a host name or IP address (no scheme or port), got {root_uri!r}")
    program = command[0]
    found = (os.path.isfile(program) and os.access(program, os.X_OK)) if os.sep in program else shutil.which(program)
    if local and not found:
        raise UserError(f"the worker command {program!r} is not an executable file or a program on PATH")


def launch_line(workers: int, servers: int, port: int, hosts_file: Optional[str], root_uri: Optional[str]) -> str:
    """The ``dso-nas launch ... --`` part of the command line that starts this job."""
    parts = ["dso-nas", "launch", "--workers", str(workers)]
    parts += ["--servers", str(servers)] if servers != 1 else []
    parts += ["--hosts", hosts_file] if hosts_file else []
    parts += ["--port", str(port)] if port else []
    parts += ["--root-uri", root_uri] if root_uri else []
    return " ".join(map(shlex.quote, parts)) + " --"


def job_roles(command: Sequence[str], workers: int, servers: int, hosts: Sequence[str] = ()) -> List[Role]:
    """The scheduler (here), ``servers`` servers and ``workers`` workers (round robin over
    ``hosts`` when given)."""
    check_launch(command, workers, servers, 0, None, local=False)
    serve = [sys.executable, "-c", "import mxnet"]
    pick = (lambda i: hosts[i % len(hosts)]) if hosts else (lambda i: None)  # noqa: E731
    roles = [Role("scheduler", "scheduler", None, serve)]
    roles += [Role(f"server {i}", "server", pick(i), serve) for i in range(servers)]
    roles += [Role(f"worker {i}", "worker", pick(i), list(command)) for i in range(workers)]
    return roles


def _env(role: Role, root_uri: str, port: int, workers: int, servers: int, line: str = "") -> Dict[str, str]:
    env = {LAUNCH_ENV: line, "DMLC_ROLE": role.role, "DMLC_PS_ROOT_URI": root_uri, "DMLC_PS_ROOT_PORT": str(port),
           "DMLC_NUM_WORKER": str(workers), "DMLC_NUM_SERVER": str(servers)}
    if root_uri == "127.0.0.1":
        env["DMLC_NODE_HOST"] = "127.0.0.1"  # every role on loopback
    if role.host is None and "OMP_NUM_THREADS" not in os.environ:  # share this machine's cores
        share = (os.cpu_count() or 1) // workers if role.role == "worker" else 1
        env["OMP_NUM_THREADS"] = str(max(1, share))
    return env


def _start(role: Role, env: Dict[str, str]) -> None:
    if role.host is None:
        role.proc = subprocess.Popen(role.command, env={**os.environ, **env}, start_new_session=True)
        return
    remote = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    script = f"cd {shlex.quote(os.getcwd())} && env {remote} {' '.join(map(shlex.quote, role.command))}"
    role.proc = subprocess.Popen(["ssh", "-o", "BatchMode=yes", role.host, script], start_new_session=True)


def _stop(roles: Sequence[Role], sig: int = signal.SIGTERM) -> None:
    """Signal every live process, wait up to :data:`GRACE_S`, then kill what is left."""
    live = [r for r in roles if r.proc is not None and r.proc.poll() is None]
    for r in live:
        try:
            os.killpg(r.proc.pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.time() + GRACE_S
    while time.time() < deadline and any(r.proc.poll() is None for r in live):
        time.sleep(POLL_S)
    for r in live:
        if r.proc.poll() is None:
            try:
                os.killpg(r.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            r.proc.wait()


def launch(command: Sequence[str], workers: int, servers: int = 1, port: int = 0,
           hosts_file: Optional[str] = None, root_uri: Optional[str] = None) -> int:
    """Run ``command`` as ``workers`` workers of one job; returns the job's exit status.

    Parameters
    ----------
    command : sequence of str
        The worker command (a ``dso-nas`` training command with ``train.kvstore=dist_sync``).
    workers, servers : int
        Processes of each role.
    port : int
        The scheduler's port (0: a free one).
    hosts_file : str, optional
        Hosts for workers and servers (ssh); none: all on this machine.
    root_uri : str, optional
        The address the hosts reach the scheduler at (default: this machine's name with a
        hosts file, else 127.0.0.1).
    """
    check_launch(command, workers, servers, port, root_uri, local=not hosts_file)
    hosts = read_hosts(hosts_file) if hosts_file else []
    line = launch_line(workers, servers, port, hosts_file, root_uri)
    uri = root_uri or (socket.getfqdn() if hosts else "127.0.0.1")
    port = port or free_port()
    roles = job_roles(command, workers, servers, hosts)
    stopping = {"signal": None}

    def forward(signum, frame) -> None:  # noqa: ANN001 - signal signature
        stopping["signal"] = signum
        for r in roles:
            if r.role == "worker" and r.proc is not None and r.proc.poll() is None:
                os.killpg(r.proc.pid, signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for r in roles:
            _start(r, _env(r, uri, port, workers, servers, line))
        LOG.info("launch: scheduler at %s:%d, %d server(s), %d worker(s)", uri, port, servers, workers)
        return _watch(roles, stopping)
    finally:
        _stop(roles)
        for s, h in old.items():
            signal.signal(s, h)


#: Seconds the workers may run on after the scheduler or a server ended cleanly.
LINGER_S = 60.0
#: Seconds the workers get to checkpoint and exit after a forwarded SIGINT/SIGTERM.
STOP_S = 120.0


def _watch(roles: Sequence[Role], stopping: Dict[str, Optional[int]]) -> int:
    """Wait until every worker has exited 0 (then the job's status is 0), or a process fails
    (then every other process is stopped and its status is the job's). After a forwarded
    signal the workers stop together: wait for all of them, then report the first failure."""
    workers = [r for r in roles if r.role == "worker"]
    ended: Dict[str, float] = {}
    while True:
        if stopping["signal"] is not None:
            deadline = time.time() + STOP_S
            while time.time() < deadline and any(w.proc.poll() is None for w in workers):
                time.sleep(POLL_S)
            codes = [w.proc.poll() for w in workers]
            return next((_status(c) for c in codes if c != 0), 0)
        for r in roles:  # every process, each time round
            rc = r.proc.poll()
            if rc is None:
                continue
            if rc == 0:  # the scheduler and servers end as the workers finalise
                ended.setdefault(r.name, time.time())
                if r.role == "worker" or time.time() - ended[r.name] < LINGER_S:
                    continue
                rc, why = 1, f"ended {LINGER_S:.0f} s before the workers"
            else:
                why = f"exited with status {_status(rc)}"
            print(f"dso-nas launch: {r.name} {why}; stopping the job", file=sys.stderr)
            _stop([x for x in roles if x is not r])
            return _status(rc)
        if all(w.proc.poll() == 0 for w in workers):
            return 0
        time.sleep(POLL_S)


def _status(rc: Optional[int]) -> int:
    """A process's exit status as a shell reports it (killed by signal N: 128 + N)."""
    if rc is None:
        return 1
    return rc if rc >= 0 else 128 - rc
