"""A study's YAML: seeds, arms and claims, validated into a :class:`Study`.

A study file names one experiment config every run starts from, the overrides every search
and every retraining gets, and its arms. An arm is one of

* ``search: [KEY=VALUE ...]`` - a DSO-NAS search with these overrides, then its derived
  architecture retrained;
* ``baseline: KIND`` (``like: ARM`` for a random one) - a Table-1 baseline of the config's
  space, drawn with the seed, with as many edges as that searched arm's architecture;
* ``arch: FILE`` - a fixed architecture file (the hand-designed reference), its space taken
  from the file.

Relative ``config`` and ``arch`` paths are read from the study file's folder (the study names
its inputs wherever it is run from); ``output_dir`` is relative to the working folder, as a
config's is. :func:`load_study` checks the file's form; :func:`dso_nas.study.runner.check_plan`
checks every run it will start before the first one.

Claims compare two arms' test errors (``better`` should be lower than ``worse``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import yaml

from ..errors import ConfigError
from ..paths import read_text

__all__ = ["Arm", "Claim", "Study", "load_study"]

_TOP = {"version", "config", "output_dir", "seeds", "overrides", "arms", "claims", "paper"}
_ARM = {"search", "baseline", "like", "arch", "retrain", "label"}


@dataclass(frozen=True)
class Arm:
    """One arm: a search (``search`` overrides), a baseline (``baseline`` kind, ``like`` arm)
    or a fixed architecture file (``arch``); ``retrain`` overrides on top of the study's."""

    name: str
    label: str
    search: Optional[Tuple[str, ...]] = None
    baseline: str = ""
    like: str = ""
    arch: str = ""
    retrain: Tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``search``, ``baseline`` or ``arch``."""
        return "search" if self.search is not None else ("baseline" if self.baseline else "arch")


@dataclass(frozen=True)
class Claim:
    """The paper's claim that arm ``better`` has a lower error than arm ``worse``."""

    name: str
    better: str
    worse: str
    paper: Tuple[float, float] = ()


@dataclass(frozen=True)
class Study:
    """A validated study file."""

    path: str
    config: str
    output_dir: str
    seeds: Tuple[int, ...]
    search_overrides: Tuple[str, ...]
    retrain_overrides: Tuple[str, ...]
    arms: Tuple[Arm, ...]
    claims: Tuple[Claim, ...]
    paper: Dict[str, Tuple[float, ...]] = field(default_factory=dict)
    #: Command-line ``KEY=VALUE`` overrides, last on every run's line.
    extra: Tuple[str, ...] = ()


def _strings(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise ConfigError(f"{where} must be a list of KEY=VALUE strings, got {value!r}")
    return tuple(value)


def _beside(study_path: str, path: str) -> str:
    """``path`` as written in the study file: relative paths are read from its folder."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(os.path.dirname(study_path), path))


def _arm(name: str, spec: Any, path: str) -> Arm:
    if not isinstance(spec, dict):
        raise ConfigError(f"study {path}: arm {name!r} must be a mapping")
    unknown = sorted(set(spec) - _ARM)
    if unknown:
        raise ConfigError(f"study {path}: arm {name!r} has unknown key(s) {unknown}; valid: {sorted(_ARM)}")
    kinds = [k for k in ("search", "baseline", "arch") if k in spec]
    if len(kinds) != 1:
        raise ConfigError(f"study {path}: arm {name!r} needs exactly one of search, baseline, arch (got {kinds})")
    arch = spec.get("arch", "")
    if "arch" in spec and (not isinstance(arch, str) or not arch):
        raise ConfigError(f"study {path}: arm {name!r}: arch must name an architecture file, got {arch!r}")
    if "baseline" in spec and (not isinstance(spec["baseline"], str) or not spec["baseline"]):
        raise ConfigError(f"study {path}: arm {name!r}: baseline must name a baseline kind, got {spec['baseline']!r}")
    arch = _beside(path, arch) if arch else ""
    if arch and not os.path.isfile(arch):
        raise ConfigError(f"study {path}: arm {name!r}: architecture file {arch} not found (a relative path is "
                          f"read from the study file's folder)")
    return Arm(name=name, label=str(spec.get("label", name)),
               search=_strings(spec["search"], f"arm {name!r} search") if "search" in spec else None,
               baseline=str(spec.get("baseline", "")), like=str(spec.get("like", "")), arch=arch,
               retrain=_strings(spec.get("retrain"), f"arm {name!r} retrain"))


def load_study(path: str, output_dir: Optional[str] = None, overrides: Sequence[str] = ()) -> Study:
    """Read and validate a study file (``ConfigError``, one line, on any problem); ``overrides``
    (``KEY=VALUE``) go last on every run's command line."""
    text = read_text(path, "study file", ConfigError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"study file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"study file {path} must be a mapping")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ConfigError(f"study {path}: unknown key(s) {unknown}; valid: {sorted(_TOP)}")
    if data.get("version") != 1:
        raise ConfigError(f"study {path}: version must be 1")
    seeds = data.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ConfigError(f"study {path}: seeds must be a non-empty list of distinct integers")
    config = data.get("config")
    if not isinstance(config, str) or not os.path.isfile(_beside(path, config)):
        raise ConfigError(f"study {path}: config {config!r} is not a file (a relative path is read from the "
                          f"study file's folder)")
    config = _beside(path, config)
    over = data.get("overrides") or {}
    if not isinstance(over, dict) or set(over) - {"search", "retrain", "all"}:
        raise ConfigError(f"study {path}: overrides must be a mapping with keys all, search, retrain")
    common = _strings(over.get("all"), "overrides.all")
    extra = _strings(list(overrides), "the command-line overrides")
    arms_spec = data.get("arms")
    if not isinstance(arms_spec, dict) or not arms_spec:
        raise ConfigError(f"study {path}: arms must be a non-empty mapping")
    arms = tuple(_arm(str(n), s, path) for n, s in arms_spec.items())
    kinds = {a.name: a.kind for a in arms}
    for a in arms:
        if a.like and kinds.get(a.like) != "search":
            raise ConfigError(f"study {path}: arm {a.name!r}: like={a.like!r} must name a search arm")
    claims = []
    for c in data.get("claims") or []:
        if not isinstance(c, dict) or c.get("better") not in kinds or c.get("worse") not in kinds:
            raise ConfigError(f"study {path}: each claim needs better and worse naming arms, got {c!r}")
        claims.append(Claim(str(c.get("name", f"{c['better']} < {c['worse']}")), c["better"], c["worse"],
                            tuple(c.get("paper") or ())))
    paper = {str(k): tuple(v) for k, v in (data.get("paper") or {}).items()}
    return Study(path=path, config=config, output_dir=output_dir or str(data.get("output_dir") or "runs/study"),
                 seeds=tuple(seeds), search_overrides=common + _strings(over.get("search"), "overrides.search"),
                 retrain_overrides=common + _strings(over.get("retrain"), "overrides.retrain"), extra=extra,
                 arms=arms, claims=tuple(claims), paper=paper)
