"""Every configuration default, with one comment per key (pycls style).

The defaults are the paper's CIFAR-10 setting (TPAMI §4.1-4.2), with the authors'
public release filling what the paper leaves open (see ``docs/fidelity.md``). Each
experiment's YAML under ``experiments/<name>/`` lists only what differs, and
``KEY=VALUE`` overrides on the command line come last::

    cfg = load_config("experiments/cifar/search.yaml", ["search.gamma=0.002"])

Unknown keys, wrongly typed values and values outside a key's choices are rejected
with one line naming the key and the closest valid key (:class:`ConfigError`).
A YAML file may start with ``_base_: other.yaml`` (relative to itself) to inherit.
"""
from __future__ import annotations

import copy
import difflib
import os
from typing import Any, Dict, Iterable, List, Optional

import yaml

from .errors import ConfigError


class CfgNode(dict):
    """A dict whose keys are also attributes; nested nodes are ``CfgNode`` too."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def to_dict(self) -> Dict[str, Any]:
        """A plain nested ``dict`` copy (for YAML/JSON/pickle)."""
        return {k: v.to_dict() if isinstance(v, CfgNode) else copy.deepcopy(v) for k, v in self.items()}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "CfgNode":
        """Build a node tree from a plain nested dict."""
        return cls({k: cls.from_dict(v) if isinstance(v, dict) else v for k, v in d.items()})

    def dump(self) -> str:
        """The config as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


_C = CfgNode()

_C.seed = 0  # seed of weights init, data split and data order; a run is reproducible from it on CPU
_C.output_dir = "runs/cifar"  # run folder: log, config, checkpoints, architecture, plots
_C.progress = True  # tqdm progress bars on long loops (always off when stderr is not a TTY)
_C.context = "cpu"  # devices: "cpu", "gpu" (= gpu:0) or "gpu:0,1" for several GPUs

_C.model = CfgNode()
_C.model.space = "normal"  # search space: "normal" (M levels x N ops, §3.1); "mobile" lands later
_C.model.stem = "cifar"  # stem: "cifar" (3x3 conv) or "imagenet" (two stride-2 3x3 convs)
_C.model.in_channels = 3  # input image channels (1 for Fashion-MNIST)
_C.model.stem_channels = 48  # stem output width (release: 48 CIFAR, 28 ImageNet)
_C.model.stages = 3  # S: number of stages (a reduction block follows every stage but the last)
_C.model.blocks = [8, 8, 8]  # B: normal search blocks in each stage (paper CIFAR: 8 per stage)
_C.model.channels = [48, 96, 192]  # width of each stage at search time (release CIFAR 48/96/192)
_C.model.levels = 4  # M: levels per block (paper: 4)
_C.model.ops = ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"]  # the N ops of a level
_C.model.scope = "full"  # "share": one λ set for all normal blocks; "full": one per block
_C.model.aggregation = "fused"  # λ aggregation: "fused" (one GEMM per level) or "per_edge" (reference)
_C.model.num_classes = 10  # classifier outputs
_C.model.bn_eps = 2e-5  # BatchNorm epsilon (release value)
_C.model.bn_momentum = 0.9  # BatchNorm running-statistics momentum (release value)

_C.data = CfgNode()
_C.data.name = "cifar10"  # dataset: "fashion_mnist" or "cifar10"
_C.data.root = ""  # dataset folder; "" = the dataset's default location (Fashion-MNIST: Debian's)
_C.data.limit = 0  # use only the first K training images (0 = all)
_C.data.weight_fraction = 0.5  # share of the training set in D_w; the rest is D_λ (CIFAR 25k/25k)
_C.data.cutout = 16  # cutout square side for retraining (0 = off); never used in search
_C.data.augment = True  # pad-4 random crop + horizontal flip on training batches
_C.data.test_limit = 0  # evaluate on only the first K test images (0 = all; for smoke runs)

_C.train = CfgNode()
_C.train.batch_size = 128  # mini-batch size of pre-training and search (paper: 128)
_C.train.eval_batch_size = 256  # batch size for evaluation
_C.train.fix_gamma = True  # BN γ fixed to 1 while pre-training and searching (§4.1)
_C.train.clip_gradient = 2.0  # element-wise gradient clipping for weights and λ (release: 2.0); 0 = off
_C.train.mirror = False  # mirror (sublinear-memory) training of the supernet

_C.pretrain = CfgNode()
_C.pretrain.epochs = 120  # epochs of training the complete supernet on D_w (paper: 120)
_C.pretrain.lr = 0.1  # constant learning rate (paper: 0.1)
_C.pretrain.momentum = 0.9  # NAG momentum (release: 0.9)
_C.pretrain.wd = 3e-4  # weight decay (paper: 3e-4)

_C.search = CfgNode()
_C.search.epochs = 120  # maximum search epochs (paper: about 120 until convergence)
_C.search.patience = 0  # stop when the λ support is unchanged this many epochs (0 = never)
_C.search.split = True  # λ on D_λ and weights on D_w; false = joint training on one set (Table 7)
_C.search.ratio = [1, 1]  # x:y weight steps to λ steps (paper: 1:1 CIFAR, 4:1 ImageNet)
_C.search.lr = 0.1  # weights' constant learning rate during search (paper: 0.1)
_C.search.momentum = 0.9  # weights' NAG momentum (release: 0.9)
_C.search.wd = 3e-4  # weights' weight decay (paper: 3e-4; release 1e-4)
_C.search.lambda_lr = 0.1  # λ learning rate η of APG-NAG (release: 0.1)
_C.search.lambda_momentum = 0.9  # λ momentum μ of APG-NAG (release: 0.9)
_C.search.gamma = 0.001  # sparsity weight γ of ||λ||_1 (release CIFAR: 0.001, ImageNet 0.01)
_C.search.budget = "flops"  # γ adaptation: "none", "flops" (Eq. 17), "mac" (Eq. 18), "latency" (Eq. 19)
_C.search.budget_every = 1  # refresh the FLOPs/MAC γ multipliers every this many λ steps
_C.search.gamma0 = 0.0  # γ_0, the base weight of adaptive latency (Eq. 19)
_C.search.latency_every = 1  # re-measure connection latencies every this many epochs (Eq. 19)

_C.latency = CfgNode()
_C.latency.runs = 5  # timed runs averaged per measurement (paper: 5)
_C.latency.warmup = 2  # untimed runs before timing
_C.latency.input_size = 224  # input side of the latency probe (paper: 224, batch 1)

_C.retrain = CfgNode()
_C.retrain.epochs = 630  # retraining epochs (paper: 630 = SGDR 10+20+40+80+160+320)
_C.retrain.batch_size = 128  # retraining mini-batch size
_C.retrain.lr_max = 0.05  # SGDR l_max (paper: 0.05)
_C.retrain.lr_min = 0.001  # SGDR l_min (paper: 0.001)
_C.retrain.t0 = 10  # SGDR first period in epochs (paper: 10)
_C.retrain.t_mul = 2  # SGDR period multiplier (paper: 2)
_C.retrain.momentum = 0.9  # NAG momentum
_C.retrain.wd = 3e-4  # weight decay (paper: 3e-4)
_C.retrain.dropout = 0.6  # dropout before the classifier (paper: 0.6)
_C.retrain.drop_path = 0.5  # drop-path probability, scaled by depth (paper: 0.5)
_C.retrain.aux_weight = 0.4  # auxiliary-head loss weight (paper: 0.4 at the end of stage 2); 0 = off
_C.retrain.target_params = 3.0e6  # width multiplier chosen to meet this parameter count (0 = off)
_C.retrain.target_flops = 0.0  # or this FLOPs (multiply-adds) budget (ImageNet: 600e6; 0 = off)
_C.retrain.width_mult = 1.0  # width multiplier used when no target is set
_C.retrain.eval_every = 0  # also evaluate on the test set every this many epochs (0 = only at the end)

# Keys whose values must be one of a fixed set.
_CHOICES: Dict[str, List[Any]] = {
    "model.space": ["normal"],
    "model.stem": ["cifar", "imagenet"],
    "model.scope": ["share", "full"],
    "model.aggregation": ["fused", "per_edge"],
    "data.name": ["fashion_mnist", "cifar10"],
    "search.budget": ["none", "flops", "mac", "latency"],
}


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
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f"config key '{key}' must be one of {_CHOICES[key]}, got {value!r}")
    return value


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
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML: {getattr(e, 'problem', e)}") from None
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
    """Cross-key checks that single-key typing cannot express."""
    m = cfg.model
    if len(m.blocks) != m.stages or len(m.channels) != m.stages:
        raise ConfigError(
            f"model.blocks ({len(m.blocks)} entries) and model.channels ({len(m.channels)} entries) "
            f"must both have model.stages = {m.stages} entries"
        )
    if m.levels < 1 or not m.ops:
        raise ConfigError("model.levels must be >= 1 and model.ops must name at least one op")
    if len(set(m.ops)) != len(m.ops):
        raise ConfigError(f"model.ops lists an op twice: {m.ops}")
    if not 0.0 < cfg.data.weight_fraction < 1.0:
        raise ConfigError(f"data.weight_fraction must be in (0, 1), got {cfg.data.weight_fraction}")
    if len(cfg.search.ratio) != 2 or min(cfg.search.ratio) < 1:
        raise ConfigError(f"search.ratio must be two positive step counts [x, y], got {cfg.search.ratio}")
    for key in ("train.batch_size", "train.eval_batch_size", "retrain.batch_size"):
        if _lookup(cfg, key) < 1:
            raise ConfigError(f"config key '{key}' must be >= 1")
    if cfg.data.limit < 0:
        raise ConfigError("data.limit must be >= 0 (0 = all training images)")


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
