"""Paths the user names: text files read into one-line errors, output places checked before
any work starts and written under a temporary name, then moved into place.

* :func:`read_text` - the UTF-8 text of a config, architecture, study or hosts file; a
  missing file, a folder, an unreadable or a binary file is one line naming the file.
* :func:`check_output` - an output file or folder that can be made and written, and that
  holds nothing the command would replace unless ``--force`` (or an explicit key) says so.
  Writability is asked of :func:`os.access`, so tests fake a read-only place by patching it
  (root may write where the mode bits forbid it).
* :func:`staged_folder` - a temporary folder beside the output; its files are moved into the
  output when the command succeeds, and it is removed whatever happens, so a failed or
  interrupted command leaves no ``*.tmp`` litter and the old output intact.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from typing import Any, Iterator, List, Optional, Sequence, Type

from .errors import UserError

__all__ = ["read_text", "read_yaml", "check_output", "first_existing", "writable", "staged_folder", "write_error",
           "atomic_write_bytes"]

#: ``errno`` values of a place that cannot be written (read-only filesystem, permissions, full disk).
_WRITE_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


def read_text(path: str, what: str, error: Type[UserError] = UserError) -> str:
    """The text of file ``path``, or ``error`` (one line naming ``what`` and ``path``).

    Parameters
    ----------
    path : str
        The file.
    what : str
        What the file is, for the message (``"config file"``).
    error : type
        The :class:`~dso_nas.errors.UserError` subclass to raise.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder, not a file") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    if b"\0" in data:
        raise error(f"{what} {path} is a binary file, not text") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text (byte {e.start} cannot be decoded)") from None



def read_yaml(path: str, what: str, error: Type[UserError] = UserError) -> Any:
    """The YAML of file ``path`` (:func:`read_text`), or ``error``: one line naming ``what``,
    ``path``, the line and the problem when it is not valid YAML."""
    import yaml  # noqa: PLC0415 - PyYAML only for the callers that read YAML

    text = read_text(path, what, error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = str(getattr(e, "problem", None) or e).splitlines()[0]
        raise error(f"{what} {path}{where} is not valid YAML: {problem}") from None


def first_existing(path: str) -> str:
    """``path`` made absolute, or its nearest existing ancestor."""
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    return probe


def writable(folder: str) -> bool:
    """Whether files may be made in the existing ``folder`` (asked of :func:`os.access`)."""
    return os.access(folder, os.W_OK | os.X_OK)


def check_output(path: str, what: str, *, folder: bool = True, force: bool = True,
                 replaces: Optional[Sequence[str]] = None, flag: str = "--force") -> None:
    """``UserError`` (one line naming ``path``) unless the command may write its output there.

    Parameters
    ----------
    path : str
        The output folder (``folder``) or file.
    what : str
        How the user named it (``"OUT"``, ``"--out"``, ``"latency.table"``).
    folder : bool
        The output is a folder (else a file).
    force : bool
        Replacing what is there is allowed; else an output folder holding any of ``replaces``
        (default: anything at all), or an existing output file, is refused naming ``flag``.
    replaces : sequence of str, optional
        The names the command writes into an output folder.
    flag : str
        What the user adds to replace existing output.
    """
    if not path:
        raise UserError(f"{what} is empty: name a {'folder' if folder else 'file'}")
    if os.path.lexists(path):
        if folder and not os.path.isdir(path):
            raise UserError(f"{what} {path} is a file, not a folder")
        if not folder and os.path.isdir(path):
            raise UserError(f"{what} {path} is a folder, not a file")
        if not force:
            held = ([n for n in replaces if os.path.lexists(os.path.join(path, n))] if replaces is not None
                    else sorted(os.listdir(path))) if folder else [os.path.basename(path)]
            if held:
                more = f" (and {len(held) - 1} more)" if len(held) > 1 else ""
                where = f"already holds {held[0]}{more}" if folder else "exists"
                raise UserError(f"{what} {path} {where}: add {flag} to replace it, or choose another {what}")
    probe = first_existing(path if folder else os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(probe):
        raise UserError(f"{what} {path} lies under {probe}, which is a file")
    if not writable(probe):
        raise UserError(f"{what} {path}: {probe} is not writable")
    if not folder and os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserError(f"{what} {path} is not writable")


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_error(exc: OSError, what: str, path: str) -> UserError:
    """The one line of an ``OSError`` met while writing ``what`` at ``path``."""
    return UserError(f"{what} {path}: cannot write there ({exc.strerror or exc})")


def _make_parents(folder: str) -> List[str]:
    """Make ``folder`` and its missing ancestors; the folders made, outermost first."""
    made = []
    probe = os.path.abspath(folder)
    while not os.path.lexists(probe):
        made.append(probe)
        probe = os.path.dirname(probe)
    made.reverse()
    for d in made:
        os.mkdir(d)
    return made


def _publish(tmp: str, out: str) -> None:
    """Move the files of ``tmp`` into ``out``: one rename when ``out`` is missing, else file by file."""
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    for name in sorted(os.listdir(tmp)):
        os.replace(os.path.join(tmp, name), os.path.join(out, name))


@contextlib.contextmanager
def staged_folder(out: str, what: str) -> Iterator[str]:
    """A temporary folder beside ``out`` to write the command's files into.

    When the body succeeds its files are moved into ``out`` (made if missing), replacing files
    of the same names; on any failure, ``KeyboardInterrupt`` included, the temporary folder
    and any parent folder made for it are removed and ``out`` is left as it was. An
    ``OSError`` saying the place cannot be written becomes one ``UserError`` line.
    """
    parent = os.path.dirname(os.path.abspath(out))
    try:
        made = _make_parents(parent)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise write_error(e, what, out) from None
    done = False
    try:
        yield tmp
        _publish(tmp, out)
        done = True
    except OSError as e:
        if e.errno in _WRITE_ERRNOS:
            raise write_error(e, what, out) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
