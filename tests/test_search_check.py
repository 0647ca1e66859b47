"""The planted check of the search (``dso-nas search-check``, dso_nas/study/planted.py; the script
tools/search_check.py): decoy ops read another sample of the batch and cost what their real op
costs; the check's smoke form runs, resumes and reports; the package never registers a decoy."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np

from dso_nas.ops import OPS, graph_cost
from dso_nas.study import planted as search_check
from test_pipeline import ROOT

GOLDEN = os.path.join(ROOT, "tests", "golden")


def test_a_decoy_is_its_op_on_the_next_sample():
    """Row i of a decoy's output is its op's output for row i + 1 (the last row reads the first);
    the decoy costs exactly what the op costs. Registered here in this test's process only:
    the registry-driven tests were collected before, so they never see it."""
    name = search_check.register_decoys(["sep_conv_3x3"])[0]
    assert name == "decoy_sep_conv_3x3" and OPS.get(name).family == "decoy"
    assert search_check.register_decoys(["sep_conv_3x3"]) == [name]  # registering again is harmless
    decoy = OPS.get(name).build(4, prefix="d_")
    decoy.initialize(mx.init.Xavier())
    real = decoy.inner
    x = mx.nd.array(np.random.RandomState(0).normal(size=(5, 4, 6, 6)))
    rolled = mx.nd.concat(x[1:], x[:1], dim=0)
    with mx.autograd.record():  # training mode: BN uses the batch's statistics, the same for both
        got, want = decoy(x), real(rolled)
    np.testing.assert_array_equal(got.asnumpy(), want.asnumpy())
    decoy.hybridize()
    np.testing.assert_array_equal(decoy(x).asnumpy(), real(rolled).asnumpy())
    assert OPS.get(name).cost(4, 6, 6) == OPS.get("sep_conv_3x3").cost(4, 6, 6)
    assert graph_cost(decoy, (5, 4, 6, 6)) == graph_cost(real, (5, 4, 6, 6))


def test_smoke_search_check_reports_real_and_decoy_slots(tmp_path):
    """Two micro searches (512 images, 1 + 3 epochs) with two real ops and their decoys, then the
    summary read back without running again."""
    out = tmp_path / "check"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "search_check.py"), "--config", os.path.join(GOLDEN, "micro.yaml"),
           "--seeds", "1", "2", "--output-dir", str(out), f"data.root={os.path.join(GOLDEN, 'fashion_mnist')}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads((out / "summary.json").read_text())
    assert body["decoys"] == ["decoy_sep_conv_3x3", "decoy_max_pool_3x3"] and sorted(body["seeds"]) == ["1", "2"]
    for seed in body["seeds"].values():
        assert seed["slots"] == {"real": 8, "decoy": 8}  # 4 levels x 2 ops of each kind
        assert len(seed["blocks"]) == 2 and 0 <= seed["decoy_rate"] <= 1 and 0 <= seed["real_rate"] <= 1
        assert len(seed["flips_per_epoch"]) == 3  # one per search epoch (the first against λ = 1)
        assert seed["meets_target"] == search_check.meets_target(seed["real_rate"], seed["decoy_rate"])
    assert "| 1 |" in done.stdout and "| 2 |" in done.stdout
    again = subprocess.run([sys.executable, "-m", "dso_nas", "search-check", "--summary"] + cmd[2:], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)  # the subcommand reads what the script ran
    assert again.returncode == 0 and json.loads((out / "summary.json").read_text()) == body
    assert again.stdout == done.stdout


def test_no_decoy_is_a_candidate_of_the_package():
    """Importing the command line and the check registers no decoy: a config may never name one."""
    probe = ("import dso_nas.cli, dso_nas.commands.search_check, dso_nas.study.planted\n"
             "from dso_nas.ops import OPS\n"
             "assert not [n for n in OPS.choices() if n.startswith('decoy_')], OPS.choices()\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_target():
    assert search_check.meets_target(0.9, 0.25) and search_check.meets_target(0.6, 0.19)
    assert not search_check.meets_target(0.6, 0.21)  # over a third of the real rate
    assert not search_check.meets_target(0.9, 0.26)  # under a third of the real rate, over 25 % of the slots


def test_darts_space_decoys_and_a_seed_read_back(tmp_path):
    """A DARTS op's decoy joins the DARTS family (``darts_decoy_X``: the space's ``decoy_X``, a
    name ``model.darts.normal_ops`` accepts in this process); a DARTS-space seed is read per cell
    kind, a slot per edge and op, its support flips from ``log.jsonl``."""
    from dso_nas.config import load_config
    from dso_nas.ops import darts_op
    from dso_nas.spaces import get_space
    from dso_nas.spaces.archfile import save_architecture
    from dso_nas.spaces.darts.arch import Cell, DartsArchitecture

    real = ["darts_sep_conv_3x3", "darts_max_pool_3x3"]
    decoys = search_check.register_decoys(real)
    assert decoys == search_check.decoy_names(real) == ["darts_decoy_sep_conv_3x3", "darts_decoy_max_pool_3x3"]
    assert all(OPS.get(d).family == "darts" and OPS.get(d).exclusive for d in decoys)
    cfg = load_config(None, ["model.space=darts", "data.name=fashion_mnist", "model.in_channels=1",
                             "model.darts.normal_ops=[sep_conv_3x3,max_pool_3x3,decoy_sep_conv_3x3,decoy_max_pool_3x3]",
                             "search.budget=none", "retrain.aux_weight=0"])
    assert "decoy_max_pool_3x3" in cfg.model.darts.normal_ops
    net = get_space("darts").build_supernet(cfg, backend="reference", head=None)  # the ops by darts_op
    assert darts_op("decoy_sep_conv_3x3") is OPS.get("darts_decoy_sep_conv_3x3")
    net.initialize(mx.init.Xavier())
    assert net(mx.nd.ones((2, 1, 28, 28))).shape == (2, 10)
    normal = Cell(((("sep_conv_3x3", 0), ("decoy_max_pool_3x3", 1)), (("max_pool_3x3", 0), ("sep_conv_3x3", 2))), (2, 3))
    reduce = Cell(((("decoy_sep_conv_3x3", 0), ("decoy_max_pool_3x3", 1)), (("max_pool_3x3", 1), ("max_pool_3x3", 2))),
                  (2, 3))
    save_architecture(DartsArchitecture(normal, reduce, 1, {}), str(tmp_path / "architecture.yaml"))
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in (
        {"phase": "pretrain", "epoch": 0}, {"phase": "search", "epoch": 0, "support_flips": 12},
        {"phase": "search", "epoch": 1, "support_flips": 3, "zero_lambda": 0, "num_lambda": 40})) + "\n")
    seed = search_check.read_seed(str(tmp_path), 2, 2)
    assert seed["blocks"] == [{"real": 3, "decoy": 1}, {"real": 2, "decoy": 2}]
    assert seed["slots"] == {"real": 10, "decoy": 10}  # 5 edges of 2 nodes, one slot per edge and op
    assert seed["real_rate"] == 5 / 20 and seed["decoy_rate"] == 3 / 20 and seed["flips_per_epoch"] == [12, 3]
    assert seed["meets_target"] == search_check.meets_target(5 / 20, 3 / 20)
