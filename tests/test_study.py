"""The study (``dso-nas study``, and its script tools/study.py): the smoke study end to end, its
statistics, its input checks, and the hand-designed reference network it retrains."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from datafiles import write_idx
from dso_nas.config import load_config
from dso_nas.errors import ArchitectureError, ConfigError, UserError
from dso_nas.ops import graph_cost
from dso_nas.spaces import SPACES
from dso_nas.spaces.archfile import architecture_from_dict, load_architecture
from dso_nas.study import claim_rows, load_study, paired, table_markdown, welch
from dso_nas.tasks import TASKS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join("experiments", "study", "smoke.yaml")
RESNET20 = os.path.join("experiments", "study", "cifar_resnet20.yaml")
REFERENCE_SPACES = [n for n in SPACES.names() if not SPACES.get(n).searchable]


def _tool(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "study.py"), *args], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _command(*args):
    return subprocess.run([sys.executable, "-m", "dso_nas", "study", *args], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_smoke_study_runs_every_arm_and_resumes(tmp_path):
    """Takes about a minute: the study tool runs every arm of the smoke study (searches,
    baselines and retrainings, each a real chain on 192 images) in fresh processes, then once
    more to show that a finished study resumes to nothing."""
    write_idx(str(tmp_path / "data"), n_train=192, n_test=64)
    out = tmp_path / "study"
    args = [SMOKE, "--output-dir", str(out), f"data.root={tmp_path / 'data'}"]
    proc = _tool(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = json.loads((out / "study.json").read_text())
    study = load_study(os.path.join(REPO, SMOKE))
    assert sorted((r["arm"], r["seed"]) for r in body["runs"]) == sorted((a.name, 1) for a in study.arms)
    for arm in study.arms:
        result = json.loads((out / arm.name / "seed1" / "retrain" / "result.json").read_text())
        assert result["eval_split"] == "test" and 0 <= result["test_error"] <= 1
        assert 0.6 * 48000 < result["params"] <= 48000  # the width multiplier met the budget (aligned widths)
    searched = load_architecture(str(out / "dso-full" / "seed1" / "search" / "architecture.yaml"))
    random = load_architecture(str(out / "random-full" / "seed1" / "baseline.yaml"))
    assert random.meta["edges"] == [int(c.mask(searched.levels, len(searched.ops)).sum()) for c in searched.cells]
    assert "| dso-share |" in (out / "study.md").read_text() and "search beats random" in proc.stdout
    assert all((out / f).exists() for f in ("error_vs_params.png", "searched_blocks.png", "search_sparsity.png"))
    from dso_nas.run.report import STUDY_REFERENCE, report

    text, data = report(str(out / "resnet20" / "seed1" / "retrain"))  # no Table-1 row for a reference
    assert data["paper_row"] == "" and "paper " not in text and "ours (fashion_mnist)" in text
    text, _ = report(str(out / "dso-share" / "seed1" / "retrain"))
    assert "paper DSO-NAS-share" in text
    assert ("ResNet-20 (study" in text) == ("fashion_mnist" in STUDY_REFERENCE)
    stamp = os.path.getmtime(out / "full" / "seed1" / "retrain" / "result.json")
    again = _command(*args)  # a finished study is skipped through, nothing is retrained (the subcommand)
    assert again.returncode == 0 and os.path.getmtime(out / "full" / "seed1" / "retrain" / "result.json") == stamp
    assert json.loads((out / "study.json").read_text())["runs"] == body["runs"]


def test_welch_p_value_against_a_hand_computed_case():
    # a = 1,2,3; b = 4,5,6: t = -3/sqrt(2/3) = -3.674, df = 4, two-sided p = 0.02131
    assert welch([1, 2, 3], [4, 5, 6]) == pytest.approx(0.021311641, rel=1e-6)
    assert np.isnan(welch([1.0], [2.0, 3.0]))
    # paired over seeds 1-3: differences -1, -2, -3: t = -2/(1/sqrt(3)) = -3.464, df = 2, p = 0.07418
    assert paired({1: 1.0, 2: 2.0, 3: 3.0, 4: 9.0}, {1: 2.0, 2: 4.0, 3: 6.0}) == pytest.approx(0.0741799, rel=1e-5)


def _body(better, worse):
    runs = [{"arm": "a", "seed": i, "error": e} for i, e in enumerate(better)]
    runs += [{"arm": "b", "seed": i, "error": e} for i, e in enumerate(worse)]
    return {"arms": [{"name": "a", "label": "a", "kind": "search"}, {"name": "b", "label": "b", "kind": "baseline"}],
            "claims": [{"name": "a beats b", "better": "a", "worse": "b", "paper": [2.7, 3.5]}], "runs": runs,
            "paper": {"a": [2.7, 0.1]}}


@pytest.mark.parametrize("better,worse,verdict", [
    ([0.100, 0.101, 0.099], [0.200, 0.203, 0.198], "holds"),
    ([0.200, 0.203, 0.198], [0.100, 0.101, 0.099], "reversed"),
    ([0.10, 0.20, 0.15], [0.12, 0.18, 0.16], "not distinguishable at n=3"),
    ([0.10], [0.12], "untested (n=1)"),
])
def test_claim_verdicts(better, worse, verdict):
    body = _body(better, worse)
    for r in body["runs"]:
        r.update(params=1000, flops=2000)
    (claim,) = claim_rows(body)
    assert claim["verdict"] == verdict
    assert claim["better_mean"] == pytest.approx(100 * np.mean(better))
    assert verdict in table_markdown(body)


FM_CONFIG = os.path.join(REPO, "experiments", "fashion_mnist", "search.yaml")


@pytest.mark.parametrize("text,problem", [
    (f"version: 1\nconfig: {FM_CONFIG}\nseeds: [1]\narms: {{a: {{search: []}}}}\nbogus: 1\n", "unknown key"),
    (f"version: 1\nconfig: {FM_CONFIG}\nseeds: [1]\narms: {{a: {{search: [], baseline: full}}}}\n", "exactly one of"),
    (f"version: 1\nconfig: {FM_CONFIG}\nseeds: [1]\narms: {{a: {{baseline: full}}, r: {{baseline: random-full, "
     f"like: a}}}}\n", "must name a search arm"),
    (f"version: 1\nconfig: {FM_CONFIG}\nseeds: [1, 1]\narms: {{a: {{baseline: full}}}}\n", "distinct"),
    ("version: 1\nconfig: nowhere.yaml\nseeds: [1]\narms: {a: {baseline: full}}\n", "is not a file"),
    # the whole plan is checked before the first run: a search arm first, the bad arm after it
    (f"version: 1\nconfig: {FM_CONFIG}\nseeds: [1]\narms: {{s: {{search: []}}, r: {{baseline: random-shar, "
     f"like: s}}}}\n", "arm 'r': baseline 'random-shar' is not one of the dense space's"),
    (f"version: 1\nconfig: {FM_CONFIG}\nseeds: [1]\narms: {{s: {{search: []}}, x: {{arch: nope.yaml}}}}\n",
     "architecture file"),
    (f"version: 1\nconfig: {FM_CONFIG}\nseeds: [1]\narms: {{s: {{search: [search.gama=1]}}}}\n",
     "arm 's': unknown config key 'search.gama'"),
    ("\x00\x01binary", "is a binary file, not text"),
])
def test_bad_study_files_are_one_line(tmp_path, text, problem):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    write_idx(str(tmp_path / "data"), n_train=8, n_test=8)
    proc = _tool(str(path), "--output-dir", str(tmp_path / "out"), f"data.root={tmp_path / 'data'}")
    assert proc.returncode == 2 and proc.stderr.startswith("study: error: ") and problem in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_study_reads_its_inputs_beside_itself(tmp_path, monkeypatch):
    from dso_nas.study import check_plan

    folder = tmp_path / "studies"
    folder.mkdir()
    (folder / "base.yaml").write_text("data: {name: fashion_mnist}\nmodel: {in_channels: 1}\n")
    (folder / "ref.yaml").write_text(open(os.path.join(REPO, RESNET20)).read())
    (folder / "s.yaml").write_text("version: 1\nconfig: base.yaml\nseeds: [1]\n"
                                   "arms: {full: {baseline: full}, ref: {arch: ref.yaml, "
                                   "retrain: [retrain.aux_weight=0, retrain.drop_path=0]}}\n")
    monkeypatch.chdir(tmp_path)  # run from elsewhere: the paths are the study file's
    write_idx(str(tmp_path / "data"), n_train=8, n_test=8)
    study = load_study(os.path.join("studies", "s.yaml"), str(tmp_path / "out"), [f"data.root={tmp_path / 'data'}"])
    assert study.config == os.path.join("studies", "base.yaml")
    assert [a.arch for a in study.arms] == ["", os.path.join("studies", "ref.yaml")]
    check_plan(study)
    with pytest.raises(UserError, match="arm .ref.: .*model.space=dense"):
        check_plan(load_study(os.path.join("studies", "s.yaml"), str(tmp_path / "out"),
                              [f"data.root={tmp_path / 'data'}", "model.space=dense"]))


@pytest.mark.parametrize("space_name", REFERENCE_SPACES)
@pytest.mark.parametrize("width_mult", [1.0, 0.4])
def test_reference_net_builds_runs_and_costs(space_name, width_mult):
    space, task = SPACES.get(space_name), TASKS.get("classification")
    cfg = load_config(None, [f"model.space={space_name}", "data.name=fashion_mnist", "model.in_channels=1",
                             "model.num_classes=3", "retrain.aux_weight=0", "retrain.drop_path=0"])
    arch = architecture_from_dict(load_architecture(os.path.join(REPO, RESNET20)).to_dict())
    space.check_arch(arch, cfg)
    net = space.build_net(arch, cfg, width_mult=width_mult, backend="reference", head=task.head(cfg, "reference"))
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    x = mx.nd.array(np.random.RandomState(0).uniform(size=(2, 1, 12, 12)))
    with autograd.record():
        loss, main = task.objective(task.loss(), net(x), mx.nd.array([0, 2]))
    loss.backward()
    assert main.shape == (2, 3)
    assert all(np.isfinite(p.grad().asnumpy()).all() for p in net.collect_params().values() if p.grad_req != "null")
    measured = graph_cost(net, (1, 1, 12, 12))
    analytic = space.net_cost(arch, cfg, width_mult, (12, 12), task.head_cost(cfg))["total"]
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)


def test_resnet20_is_gluoncvs_at_full_width():
    from gluoncv.model_zoo import get_cifar_resnet

    cfg = load_config(None, ["model.space=cifar_resnet", "model.in_channels=3", "retrain.width_divisor=1"])
    arch = architecture_from_dict(dict(load_architecture(os.path.join(REPO, RESNET20)).to_dict(), in_channels=3))
    ours = SPACES.get("cifar_resnet").net_cost(arch, cfg, 1.0, (32, 32), None)["total"]
    theirs = get_cifar_resnet(1, 20, classes=10)
    theirs.initialize()
    theirs(mx.nd.zeros((1, 3, 32, 32)))
    assert ours.params == sum(int(np.prod(p.shape)) for p in theirs.collect_params().values()
                              if p.grad_req != "null")


def test_reference_space_refuses_search_and_bad_files():
    space = SPACES.get("cifar_resnet")
    cfg = load_config(None, ["model.space=cifar_resnet"])
    with pytest.raises(ConfigError, match="nothing to search"):
        space.build_supernet(cfg, backend="reference", head=None)
    good = load_architecture(os.path.join(REPO, RESNET20)).to_dict()
    for bad, problem in ((dict(good, layers=[3, 0, 3]), "layers"), (dict(good, channels=[16, 32]), "channels"),
                         (dict(good, depth=20), "unknown key"), (dict(good, version=2), "version")):
        with pytest.raises(ArchitectureError, match=problem):
            architecture_from_dict(bad)


STUDY_FILES = sorted(f for f in os.listdir(os.path.join(REPO, "experiments", "study"))
                     if f.endswith(".yaml") and "arms:" in open(os.path.join(REPO, "experiments", "study", f)).read())


@pytest.mark.parametrize("name", STUDY_FILES)
def test_every_study_file_resolves(name, monkeypatch):
    monkeypatch.chdir(REPO)
    study = load_study(os.path.join("experiments", "study", name))
    assert len(study.seeds) >= (1 if name == "smoke.yaml" else 3)
    for arm in study.arms:
        load_config(study.config, [*study.search_overrides, *(arm.search or ())])  # unknown keys refused
        cfg = load_config(study.config, [*study.retrain_overrides, *arm.retrain])
        if arm.kind == "arch":
            arch = load_architecture(arm.arch)
            cfg = load_config(study.config, [*study.retrain_overrides, f"model.space={arch.to_dict()['space']}",
                                             *arm.retrain])
            SPACES.get(cfg.model.space).check_arch(arch, cfg)
