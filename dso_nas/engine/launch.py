"""``dso-nas launch``: a ps-lite job on this machine - scheduler, servers, workers - for a
``dso-nas`` command with ``train.kvstore=dist_sync``.

MXNet's wheel ships ``mxnet/tools/launch.py``, but it needs dmlc-core's tracker, which neither
the wheel nor the package index has. This launcher starts the roles itself with the
environment ps-lite reads (``DMLC_ROLE``, ``DMLC_PS_ROOT_URI``, ``DMLC_PS_ROOT_PORT``,
``DMLC_NUM_SERVER``, ``DMLC_NUM_WORKER``): the scheduler and the servers are Python processes
that only import MXNet (which then serves), the workers run the command. SIGINT / SIGTERM are
passed on to the workers; when a worker, a server or the scheduler fails, the other
processes are stopped (a dist kvstore would wait for the dead one for ever) and the launcher
exits with the failed process's status.
Several machines (a hosts file, ssh) are not supported yet.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from ..errors import UserError

__all__ = ["launch", "free_port", "role_env"]

LOG = logging.getLogger("dso_nas")
_SERVE = [sys.executable, "-c", "import mxnet"]  # DMLC_ROLE=scheduler|server: importing MXNet serves


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def role_env(role: str, *, workers: int, servers: int, port: int, host: str = "127.0.0.1",
             base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of one ps-lite process."""
    env = dict(os.environ if base is None else base)
    env.update(DMLC_ROLE=role, DMLC_PS_ROOT_URI=host, DMLC_PS_ROOT_PORT=str(port),
               DMLC_NUM_SERVER=str(servers), DMLC_NUM_WORKER=str(workers))
    return env


def _stop(procs: Sequence[subprocess.Popen], grace: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(command: Sequence[str], *, workers: int, servers: int = 1, port: int = 0,
           grace: float = 10.0, env: Optional[Dict[str, str]] = None) -> int:
    """Run ``command`` as ``workers`` ps-lite workers with ``servers`` servers and a scheduler
    on this machine; returns the exit status (0, or the first failed worker's)."""
    if workers < 1 or servers < 1:
        raise UserError(f"--workers and --servers must be >= 1, got {workers}, {servers}")
    if not command:
        raise UserError("nothing to launch: give the command after --, e.g. dso-nas launch --workers 2 -- "
                        "dso-nas search ... train.kvstore=dist_sync")
    port = port or free_port()
    kw = dict(workers=workers, servers=servers, port=port, base=env)
    roles: List[subprocess.Popen] = [subprocess.Popen(_SERVE, env=role_env("scheduler", **kw))]
    roles += [subprocess.Popen(_SERVE, env=role_env("server", **kw)) for _ in range(servers)]
    try:
        procs = [subprocess.Popen(list(command), env=role_env("worker", **kw)) for _ in range(workers)]
    except OSError as exc:
        _stop(roles, grace)
        raise UserError(f"cannot start {command[0]}: {exc.strerror}") from None
    LOG.info("launched %d worker(s), %d server(s) and a scheduler on 127.0.0.1:%d", workers, servers, port)

    def forward(signum, frame) -> None:  # noqa: ANN001 - signal signature
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        while [p.poll() for p in procs].count(None):  # poll every one (any() would stop at the first)
            failed = [(f"worker {k}", p.returncode) for k, p in enumerate(procs) if p.returncode not in (None, 0)]
            failed += [(name, p.returncode) for name, p in zip(["the scheduler"] + [f"server {k}" for k in
                                                                              range(servers)], roles)
                       if p.poll() not in (None, 0)]  # a failed role would leave the workers waiting
            if failed:
                name, code = failed[0]
                status = code if code else 1
                print(f"dso-nas launch: {name} exited with status {code}; stopping the others", file=sys.stderr)
                _stop(procs, grace)
                break
            time.sleep(0.2)
        else:
            status = next((p.returncode for p in procs if p.returncode), 0)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if any(p.poll() is None for p in procs):
            _stop(procs, grace)
        _stop(roles, grace if status == 0 else 1.0)  # after the workers they end by themselves
    return status
