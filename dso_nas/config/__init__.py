"""Configuration: the defaults (:mod:`dso_nas.config.defaults`, one comment per key), YAML
files and ``KEY=VALUE`` overrides, validated.

The defaults are the paper's CIFAR-10 setting (TPAMI §4.1-4.2), with the authors'
public release filling what the paper leaves open (see ``docs/fidelity.md``). Each
experiment's YAML under ``experiments/<name>/`` lists only what differs, and
``KEY=VALUE`` overrides on the command line come last::

    cfg = load_config("experiments/cifar/search.yaml", ["search.gamma=0.002"])

Unknown keys, wrongly typed values and values outside a key's choices (which come from
the registries of spaces, tasks, datasets and ops) are rejected
with one line naming the key and the closest valid key (:class:`ConfigError`).
A YAML file may start with ``_base_: other.yaml`` (relative to itself) to inherit.
"""
from __future__ import annotations

import difflib
import os
from typing import Any, Dict, Iterable, List, Optional

import yaml

from ..errors import ConfigError
from ..paths import read_yaml
from .defaults import CHOICES, RANGES, _C
from .node import CfgNode

__all__ = ["CfgNode", "defaults", "load_config", "config_from_dict", "merge", "parse_overrides", "validate", "diff"]


def defaults() -> CfgNode:
    """A fresh copy of every default."""
    return CfgNode.from_dict(_C.to_dict())


def _closest(key: str, valid: Iterable[str]) -> str:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.0)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _flat_keys(node: Dict[str, Any], prefix: str = "") -> List[str]:
    keys = []
    for k, v in node.items():
        keys.append(prefix + k)
        if isinstance(v, dict):
            keys.extend(_flat_keys(v, prefix + k + "."))
    return keys


def _type_name(value: Any) -> str:
    return type(value).__name__


def _yaml11_float(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; take such strings as floats."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _coerce(key: str, default: Any, value: Any) -> Any:
    """Check ``value`` against the type of ``default``; return the value to store."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        value = _yaml11_float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, (list, tuple))
        if ok and default:
            elem = default[0]
            value = [_coerce(f"{key}[{i}]", elem, v) for i, v in enumerate(value)]
        value = list(value) if ok else value
    else:
        ok = True
    if not ok:
        raise ConfigError(f"config key '{key}' expects {_type_name(default)}, got {value!r} ({_type_name(value)})")
    return value


def _check_choices(cfg: CfgNode) -> None:
    """Every value of a :data:`CHOICES` key (each element of a list) is one of its choices."""
    for key, allowed in CHOICES.items():
        value = _lookup(cfg, key)
        valid = tuple(allowed())
        for v in (value if isinstance(value, list) else [value]):
            if v not in valid:
                raise ConfigError(f"config key '{key}' must be one of {list(valid)}, got {v!r}")


def _in_range(value: Any, low: Optional[str], high: Optional[str]) -> bool:
    ok = True
    if low is not None:
        bound = float(low[1:])
        ok = value >= bound if low[0] == "[" else value > bound
    if high is not None:
        bound = float(high[:-1])
        ok = ok and (value <= bound if high[-1] == "]" else value < bound)
    return ok


def _interval(low: Optional[str], high: Optional[str]) -> str:
    return f"{low or '(-inf'}, {high or 'inf)'}"


def _check_ranges(cfg: CfgNode) -> None:
    """Every numeric key of :data:`RANGES` (each element of a list) lies in its range."""
    for key, (low, high) in RANGES.items():
        value = _lookup(cfg, key)
        for v in (value if isinstance(value, list) else [value]):
            if not _in_range(v, low, high):
                raise ConfigError(f"config key '{key}' must be in {_interval(low, high)}, got {v!r}")


def merge(cfg: CfgNode, update: Dict[str, Any], prefix: str = "") -> None:
    """Merge a nested dict into ``cfg`` in place, rejecting unknown keys and bad types."""
    if not isinstance(update, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {update!r}")
    for key, value in update.items():
        full = prefix + str(key)
        if key not in cfg:
            raise ConfigError(f"unknown config key '{full}'{_closest(full, _flat_keys(_C))}")
        if isinstance(cfg[key], CfgNode):
            merge(cfg[key], value, full + ".")
        else:
            cfg[key] = _coerce(full, _lookup(_C, full), value)


def _lookup(node: Dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        node = node[part]
    return node


def _read_yaml(path: str, seen: Optional[List[str]] = None) -> Dict[str, Any]:
    """Read a config YAML (following ``_base_``) into a nested dict of updates."""
    seen = seen or []
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"config file {path} includes itself through _base_")
    data = read_yaml(path, "config file", ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {_type_name(data)}")
    base = data.pop("_base_", None)
    if base is None:
        return data
    merged = _read_yaml(os.path.join(os.path.dirname(path), base), seen + [path])
    _deep_update(merged, data)
    return merged


def _deep_update(dst: Dict[str, Any], src: Dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


def parse_overrides(overrides: Iterable[str]) -> Dict[str, Any]:
    """Turn ``["a.b=1", "c=[1, 2]"]`` into a nested dict; values are parsed as YAML."""
    nested: Dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"bad override '{item}': expected KEY=VALUE, e.g. search.epochs=10")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"bad override '{item}': the value is not valid YAML") from None
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"bad override '{item}': '{part}' is both a value and a section")
        node[parts[-1]] = value
    return nested


def validate(cfg: CfgNode) -> None:
    """Choices (:data:`CHOICES`) and ranges (:data:`RANGES`) of single keys, then the cross-key
    checks they cannot express (the search space and the task check their own sections)."""
    from ..data import dataset_spec  # noqa: PLC0415 - defers the slow MXNet import (the registries import it)
    from ..search.methods import check_method  # noqa: PLC0415 - defers the slow MXNet import
    from ..spaces import SPACES, get_space  # noqa: PLC0415 - defers the slow MXNet import
    from ..tasks import get_task  # noqa: PLC0415 - defers the slow MXNet import

    _check_choices(cfg)
    _check_ranges(cfg)
    get_space(cfg.model.space).check_config(cfg)
    check_method(cfg, SPACES)
    task = get_task(cfg.task.name)
    task.check_config(cfg)
    labels_for = dataset_spec(cfg.data.name).task  # a dataset's labels are for one task
    if labels_for != task.name:
        raise ConfigError(f"data.name={cfg.data.name} has {labels_for} labels: set task.name={labels_for}")
    if len(cfg.search.ratio) != 2:  # each count is >= 1 by RANGES
        raise ConfigError(f"search.ratio must be two positive step counts [x, y], got {cfg.search.ratio}")


def load_config(path: Optional[str] = None, overrides: Iterable[str] = ()) -> CfgNode:
    """Defaults ← YAML file (with ``_base_`` chain) ← ``KEY=VALUE`` overrides, validated.

    Parameters
    ----------
    path : str, optional
        An experiment YAML listing only what differs from the defaults.
    overrides : iterable of str
        ``KEY=VALUE`` items with dotted keys; values are parsed as YAML.

    Returns
    -------
    CfgNode
        The resolved configuration.

    Raises
    ------
    ConfigError
        For an unreadable file, an unknown key, a wrongly typed value or a bad override.
    """
    cfg = defaults()
    if path:
        merge(cfg, _read_yaml(path))
    merge(cfg, parse_overrides(overrides))
    validate(cfg)
    return cfg


def config_from_dict(d: Dict[str, Any]) -> CfgNode:
    """Rebuild (and re-validate) a config stored in a run folder or a checkpoint."""
    cfg = defaults()
    merge(cfg, d)
    validate(cfg)
    return cfg


def diff(a: Dict[str, Any], b: Dict[str, Any], prefix: str = "") -> List[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(diff(va, vb, prefix + key + "."))
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} -> {vb!r}")
    return out
