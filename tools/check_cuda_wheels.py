"""Check that the pinned CUDA wheels provide every library MXNet's CUDA wheel links.

    python tools/check_cuda_wheels.py /tmp/dso_nas_cuda_wheels       # make check-cuda-wheels
    python tools/check_cuda_wheels.py --archs path/to/libmxnet.so    # the GPU code a build carries

Downloads the ``mxnet-cu*`` and ``nvidia-*`` pins of ``requirements-gpu.txt`` into the folder
given (about 2.3 GB; files already there are reused), unpacks their shared libraries, and
follows the ELF ``NEEDED`` entries from every library of the MXNet wheel and every library
``dso_nas.cuda_libs`` preloads (cuDNN 8 opens its sub-libraries by name at run time). Each
soname must come from the MXNet wheel itself, a pinned wheel, the C and C++ runtime of any
Debian/Ubuntu (the CPU wheel needs the same), or the NVIDIA driver (``libcuda.so.1``). Every
library a pinned wheel provides that way must be on the preload list, and the preload list's
files must exist. Then it reads the GPU code of the wheel's ``libmxnet.so`` (its
``.nv_fatbin`` section): the compute capabilities must be ``dso_nas.gpus.WHEEL_ARCHS`` and
there must be no PTX. Prints a table; exits 1 when anything is missing or differs.
``docs/gpu.md`` records the result.
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from typing import BinaryIO, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dso_nas.cuda_libs import LIBRARIES  # noqa: E402 - the repository's own, not an installed one
from dso_nas.errors import UserError  # noqa: E402
from dso_nas.gpus import WHEEL_ARCHS, parse_archs  # noqa: E402
from toolentry import program, run_tool  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Sonames every Debian/Ubuntu has, with the package: glibc, the GCC runtime (the CPU wheel
#: links the same), zlib (essential).
SYSTEM = {
    **{name: "libc6" for name in ("libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0",
                                  "ld-linux-x86-64.so.2")},
    "libstdc++.so.6": "libstdc++6", "libgcc_s.so.1": "libgcc-s1", "libgomp.so.1": "libgomp1",
    "libquadmath.so.0": "libquadmath0", "libz.so.1": "zlib1g",
}
#: The NVIDIA driver's own library: not a wheel's to provide.
DRIVER = {"libcuda.so.1": "the NVIDIA driver"}

_PIN = re.compile(r"^\s*((?:mxnet-cu\d+)|(?:nvidia-[A-Za-z0-9-]+))==([^\s#;]+)")

# ELF: dynamic section tags
_DT_NEEDED, _DT_SONAME, _DT_RUNPATH = 1, 14, 29
_SHT_DYNAMIC = 6
# fat binary container (the .nv_fatbin section): header magic; entry kinds
_FATBIN_MAGIC = 0xBA55ED50
_KIND_PTX, _KIND_CUBIN = 1, 2


class ElfInfo(NamedTuple):
    soname: str
    needed: Tuple[str, ...]
    runpath: str


def _sections(f: BinaryIO) -> Tuple[List[Tuple[int, ...]], bytes]:
    """The section headers of a 64-bit little-endian ELF file, and its section-name table."""
    f.seek(0)
    head = f.read(64)
    if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", head, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 0x3A)
    f.seek(shoff)
    raw = f.read(shentsize * shnum)
    # name, type, flags, addr, offset, size, link, info, addralign, entsize
    sections = [struct.unpack_from("<IIQQQQIIQQ", raw, i * shentsize) for i in range(shnum)]
    names = sections[shstrndx]
    f.seek(names[4])
    return sections, f.read(names[5])


def _string(table: bytes, offset: int) -> str:
    return table[offset:table.index(b"\0", offset)].decode()


def elf_info(path: str) -> ElfInfo:
    """``SONAME`` (the file name when unset), ``NEEDED`` and ``RUNPATH`` of a shared library."""
    with open(path, "rb") as f:
        sections, _ = _sections(f)
        dynamic = next((s for s in sections if s[1] == _SHT_DYNAMIC), None)
        if dynamic is None:
            return ElfInfo(os.path.basename(path), (), "")
        strtab = sections[dynamic[6]]
        f.seek(strtab[4])
        strings = f.read(strtab[5])
        f.seek(dynamic[4])
        raw = f.read(dynamic[5])
    soname, needed, runpath = os.path.basename(path), [], ""
    for i in range(0, len(raw) - 15, 16):
        tag, value = struct.unpack_from("<qQ", raw, i)
        if tag == 0:
            break
        if tag == _DT_NEEDED:
            needed.append(_string(strings, value))
        elif tag == _DT_SONAME:
            soname = _string(strings, value)
        elif tag == _DT_RUNPATH:
            runpath = _string(strings, value)
    return ElfInfo(soname, tuple(needed), runpath)


def fatbin_archs(f: BinaryIO, offset: int, size: int) -> Dict[Tuple[int, int], int]:
    """``{(kind, sm): count}`` of the GPU code in a ``.nv_fatbin`` section (kind 1: PTX, 2: cubin;
    sm 86: compute capability 8.6): the containers follow each other, each a 16-byte header
    (magic, version, header size, size of its entries) and entries whose headers give kind,
    header size, payload size and architecture."""
    counts: Dict[Tuple[int, int], int] = collections.Counter()
    pos, end = offset, offset + size
    while pos + 16 <= end:
        f.seek(pos)
        magic, _, header, body = struct.unpack("<IHHQ", f.read(16))
        if magic != _FATBIN_MAGIC:
            pos += 8  # containers are 8-byte aligned; skip padding
            continue
        entry, stop = pos + header, pos + header + body
        while entry < stop:
            f.seek(entry)
            raw = f.read(32)
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", raw, 0)
            sm, = struct.unpack_from("<I", raw, 28)
            counts[(kind, sm)] += 1
            if entry_header == 0:
                raise ValueError(f"malformed fat binary entry at {entry}")
            entry += entry_header + payload
        pos = stop
    return counts


def library_archs(path: str) -> Tuple[Set[Tuple[int, int]], Set[Tuple[int, int]]]:
    """The compute capabilities a library has cubins for, and those it has PTX for."""
    with open(path, "rb") as f:
        sections, names = _sections(f)
        fatbin = next((s for s in sections if _string(names, s[0]) == ".nv_fatbin"), None)
        counts = fatbin_archs(f, fatbin[4], fatbin[5]) if fatbin else {}
    archs = {kind: {(sm // 10, sm % 10) for (k, sm) in counts if k == kind} for kind in (_KIND_CUBIN, _KIND_PTX)}
    return archs[_KIND_CUBIN], archs[_KIND_PTX]


def pins(requirements: str) -> List[Tuple[str, str]]:
    """The ``(name, version)`` pins of the MXNet CUDA wheel and the NVIDIA wheels."""
    with open(requirements, encoding="utf-8") as f:
        return [(m.group(1), m.group(2)) for m in map(_PIN.match, f) if m]


def _wheel_file(folder: str, name: str, version: str) -> Optional[str]:
    prefix = f"{name.replace('-', '_')}-{version}-"
    found = [w for w in sorted(os.listdir(folder)) if w.startswith(prefix) and w.endswith(".whl")]
    return os.path.join(folder, found[0]) if found else None


def download(folder: str, wanted: List[Tuple[str, str]]) -> Dict[str, str]:
    """``pip download --no-deps`` what is not in ``folder`` yet; name → wheel file."""
    os.makedirs(folder, exist_ok=True)
    missing = [f"{n}=={v}" for n, v in wanted if not _wheel_file(folder, n, v)]
    if missing:
        print(f"downloading {len(missing)} wheel(s) into {folder} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                        "--only-binary=:all:", "-d", folder, *missing], check=True)
    out = {}
    for name, version in wanted:
        path = _wheel_file(folder, name, version)
        if path is None:
            raise UserError(f"{name}=={version} is not in {folder} after pip download")
        out[name] = path
    return out


def unpack(wheel: str, folder: str) -> List[str]:
    """The shared libraries of ``wheel``, unpacked under ``folder`` (kept when already there)."""
    out = []
    with zipfile.ZipFile(wheel) as z:
        for member in z.infolist():
            if ".so" not in os.path.basename(member.filename) or member.is_dir():
                continue
            target = os.path.join(folder, member.filename)
            if not (os.path.isfile(target) and os.path.getsize(target) == member.file_size):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with z.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
            out.append(target)
    return out


class Row(NamedTuple):
    soname: str
    provider: str  #: "" when missing
    needed_by: Tuple[str, ...]


def resolve(provided: Dict[str, Tuple[str, Tuple[str, ...]]], roots: Iterable[str]) -> List[Row]:
    """Follow ``NEEDED`` from ``roots`` through ``provided`` (soname → (provider, needed)) and
    classify every soname reached: a provider, the system, the driver, or missing (``""``)."""
    needed_by: Dict[str, Set[str]] = collections.defaultdict(set)
    todo = list(dict.fromkeys(roots))
    seen: Set[str] = set()
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        for dep in provided.get(name, ("", ()))[1]:
            needed_by[dep].add(name)
            todo.append(dep)
    rows = []
    for name in sorted(seen, key=lambda n: (n not in provided, n in SYSTEM, n)):
        if name in provided:
            provider = provided[name][0]
        elif name in DRIVER:
            provider = DRIVER[name]
        elif name in SYSTEM:
            provider = f"system ({SYSTEM[name]})"
        else:
            provider = ""
        rows.append(Row(name, provider, tuple(sorted(needed_by.get(name, ())))))
    return rows


@functools.lru_cache(maxsize=1)
def _ldconfig() -> str:
    try:
        return subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def _system_has(name: str) -> bool:
    return f"{name} (" in _ldconfig()


def check(folder: str, requirements: str) -> int:
    """The whole check; returns the exit status."""
    wanted = pins(requirements)
    if not any(n.startswith("mxnet-cu") for n, _ in wanted):
        raise UserError(f"no mxnet-cu* pin in {requirements}")
    wheels = download(folder, wanted)
    provided: Dict[str, Tuple[str, Tuple[str, ...]]] = {}
    mxnet_libs, libmxnet = [], None
    for name, wheel in wheels.items():
        version = dict(wanted)[name]
        for path in unpack(wheel, os.path.join(folder, "unpacked", os.path.basename(wheel)[:-4])):
            info = elf_info(path)
            provided[info.soname] = (f"{name} {version}", info.needed)
            if name.startswith("mxnet-cu"):
                mxnet_libs.append(info.soname)
                libmxnet = path if info.soname == "libmxnet.so" else libmxnet
    preload = [soname for _, soname in LIBRARIES]
    rows = resolve(provided, mxnet_libs + preload)
    failures = []
    width = max(len(r.soname) for r in rows)
    print(f"\n{'soname':<{width}}  {'provided by':<34}  needed by")
    for row in rows:
        where = row.provider or "MISSING"
        if row.provider.startswith("system") and not _system_has(row.soname):
            where += ", not on this machine"
        users = ", ".join(row.needed_by[:3]) + (f" and {len(row.needed_by) - 3} more" if len(row.needed_by) > 3 else "")
        if not users:
            users = "(in the MXNet wheel)" if row.soname in mxnet_libs else "(opened by name at run time)"
        print(f"{row.soname:<{width}}  {where:<34}  {users}")
        if not row.provider:
            failures.append(f"{row.soname} is provided by no pinned wheel")
        elif row.provider.startswith("nvidia-") and row.soname not in preload:
            failures.append(f"{row.soname} ({row.provider}) is not on dso_nas.cuda_libs.LIBRARIES")
    failures += [f"{s} (dso_nas.cuda_libs.LIBRARIES) is in no pinned wheel" for s in preload if s not in provided]
    used = {r.provider for r in rows}
    for name, version in wanted:
        if f"{name} {version}" not in used:
            print(f"note: {name}=={version} provides nothing reached from libmxnet.so")
    if libmxnet:
        cubins, ptx = library_archs(libmxnet)
        expected = parse_archs(WHEEL_ARCHS, "WHEEL_ARCHS")
        text = ", ".join(f"{a}.{b}" for a, b in sorted(cubins))
        print(f"\nlibmxnet.so GPU code: cubins for {text}; PTX for {', '.join(f'{a}.{b}' for a, b in sorted(ptx)) or 'none'}")
        if set(expected.cubins) != cubins or ptx:
            failures.append(f"libmxnet.so carries {text} (PTX {sorted(ptx)}), dso_nas.gpus.WHEEL_ARCHS says {WHEEL_ARCHS}")
    for line in failures:
        print(f"FAIL: {line}")
    print("\nOK: every library is provided" if not failures else f"\n{len(failures)} problem(s)")
    return 1 if failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="check_cuda_wheels", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", nargs="?", help="download and unpack folder (a temporary one: ~2.3 GB wheels, ~4 GB unpacked)")
    p.add_argument("--requirements", default=os.path.join(REPO, "requirements-gpu.txt"))
    p.add_argument("--archs", metavar="LIB", help="only print the compute capabilities of LIB's GPU code (a libmxnet.so)")
    return run_tool("check_cuda_wheels", p, lambda args: work(p, args), argv, settings=False)


def work(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The GPU code of ``--archs``, or the whole check; the exit status."""
    if args.archs:
        cubins, ptx = library_archs(args.archs)
        print(";".join(f"{a}.{b}{'+PTX' if (a, b) in ptx else ''}" for a, b in sorted(cubins | ptx)) or "no GPU code")
        return 0
    if not args.folder:
        p.error("give the download folder (or --archs LIB)")
    return check(args.folder, args.requirements)


if __name__ == "__main__":
    program(main)
