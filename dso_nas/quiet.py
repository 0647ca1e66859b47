"""Keep MXNet's informational chatter off the console, and nothing else.

MXNet's C++ code writes ``LOG(INFO)`` lines straight to file descriptor 2, with no runtime
switch in the 1.9.1 wheel; the oneDNN pooling of every training step whose average pooling
excludes the padding (all of ours) prints ``MKLDNN Pooling: training with prop_kind is
forward_scoring`` once per new shape, between our log lines. :func:`filter_native_stderr`
routes descriptor 2 through a small child process that drops the lines of
:data:`NOISE` and passes every other byte on unchanged (warnings, errors, crash reports), while
Python's ``sys.stderr`` - our logging, tqdm's bars - keeps writing to the terminal directly.
``DSO_NAS_MXNET_INFO=1`` turns the filter off.
"""
from __future__ import annotations

import io
import os
import signal
import sys
from typing import Tuple

__all__ = ["NOISE", "filter_native_stderr"]

#: Substrings of the native lines that are dropped.
NOISE: Tuple[bytes, ...] = (b"training with prop_kind is forward_scoring",)


def _pump(read_fd: int, write_fd: int) -> None:
    """Copy lines from ``read_fd`` to ``write_fd`` until EOF, dropping :data:`NOISE` lines."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # outlive the parent's Ctrl-C: it may still write
    with os.fdopen(read_fd, "rb", buffering=0) as src:
        for line in iter(src.readline, b""):
            if not any(noise in line for noise in NOISE):
                os.write(write_fd, line)


def filter_native_stderr() -> bool:
    """Route file descriptor 2 through the filter; call before MXNet is imported.

    Returns whether the filter was installed (not when ``DSO_NAS_MXNET_INFO=1``, when
    descriptor 2 is not open, or where ``fork`` is missing).
    """
    if os.environ.get("DSO_NAS_MXNET_INFO") == "1" or not hasattr(os, "fork"):
        return False
    try:
        terminal = os.dup(2)
    except OSError:
        return False
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the filter: reads until every writer (the parent and its children) is gone
        os.close(write_fd)
        try:
            _pump(read_fd, terminal)
        finally:
            os._exit(0)
    os.close(read_fd)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    # Python's own writes skip the filter: same terminal, same isatty() for progress bars.
    sys.stderr = io.TextIOWrapper(os.fdopen(terminal, "wb", buffering=0), encoding=sys.stderr.encoding,
                                  errors="backslashreplace", line_buffering=True, write_through=True)
    return True
