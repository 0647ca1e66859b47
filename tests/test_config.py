"""The config system: defaults, YAML files, overrides, rejection of bad input."""
import os

import pytest
import yaml

from dso_nas.config import config_from_dict, defaults, diff, load_config
from dso_nas.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIRED = [
    "model.stages", "model.blocks", "model.levels", "model.ops", "model.channels", "model.scope",
    "data.name", "data.root", "data.limit", "train.batch_size", "pretrain.epochs", "search.epochs",
    "retrain.epochs", "seed", "output_dir",
]


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def test_required_keys_exist():
    cfg = defaults()
    for key in REQUIRED:
        _get(cfg, key)


def test_every_default_has_a_comment():
    src = open(os.path.join(ROOT, "dso_nas", "config", "defaults.py"), encoding="utf-8").read().splitlines()
    assignments = [l for l in src if l.startswith("_C.") and " = " in l and "CfgNode()" not in l]
    assert assignments
    missing = [l for l in assignments if "  # " not in l]
    assert missing == []


def test_paper_defaults():
    cfg = defaults()
    assert cfg.model.levels == 4 and len(cfg.model.ops) == 4
    assert cfg.model.blocks == [8, 8, 8] and cfg.model.channels == [48, 96, 192]
    assert cfg.retrain.epochs == 10 + 20 + 40 + 80 + 160 + 320


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model:\n  scope: share\nsearch:\n  gamma: 0.01\n")
    cfg = load_config(str(path), ["search.gamma=0.5", "model.blocks=[1, 2, 3]", "train.mirror=true"])
    assert cfg.model.scope == "share"
    assert cfg.search.gamma == 0.5
    assert cfg.model.blocks == [1, 2, 3]
    assert cfg.train.mirror is True


def test_int_accepted_for_float():
    cfg = load_config(None, ["search.gamma=1"])
    assert isinstance(cfg.search.gamma, float) and cfg.search.gamma == 1.0


def test_base_inheritance(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 7\nsearch:\n  epochs: 3\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nsearch:\n  gamma: 0.2\n")
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert (cfg.seed, cfg.search.epochs, cfg.search.gamma) == (7, 3, 0.2)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["search.gama=0.1"], "did you mean 'search.gamma'"),
        (["modle.levels=3"], "unknown config key 'modle' (did you mean 'model'?)"),
        (["search.epochs=ten"], "'search.epochs' expects int"),
        (["train.mirror=3"], "'train.mirror' expects bool"),
        (["model.scope=half"], "must be one of ['share', 'full']"),
        (["search.epochs"], "expected KEY=VALUE"),
        (["model.blocks=[1, 2]"], "must both have model.stages"),
        (["model=3"], "must be a mapping"),
        (["model.ops=[sep_conv_3x3, 3]"], "'model.ops[1]' expects str"),
    ],
)
def test_bad_input_one_line(overrides, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    msg = str(err.value)
    assert needle in msg
    assert "\n" not in msg


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(str(lst))


def test_roundtrip_and_diff():
    cfg = load_config(None, ["seed=3"])
    again = config_from_dict(yaml.safe_load(cfg.dump()))
    assert again == cfg
    assert diff(cfg.to_dict(), defaults().to_dict()) == ["seed: 3 -> 0"]


@pytest.mark.parametrize("name", sorted(  # experiments/study/ holds study and architecture files (test_study.py);
    os.path.join(d, f) for d, _, files in os.walk(os.path.join(ROOT, "experiments")) for f in files  # reference/:
    if f.endswith(".yaml") and os.path.basename(d) not in ("study", "reference")  # architectures (test_mobile.py)
))
def test_experiment_files_load(name):
    cfg = load_config(name)
    assert cfg.output_dir


def test_exponent_floats_without_dot(tmp_path):
    cfg = load_config(None, ["search.gamma=1e-3"])
    assert cfg.search.gamma == 1e-3
    (tmp_path / "e.yaml").write_text("search:\n  wd: 4e-5\n")
    assert load_config(str(tmp_path / "e.yaml")).search.wd == 4e-5
    with pytest.raises(ConfigError, match="expects float"):
        load_config(None, ["search.gamma=abc"])
