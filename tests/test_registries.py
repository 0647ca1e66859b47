"""Registry-driven tests: every registered space x op x task builds, hybridizes, runs forward and
backward in both op forms, and its analytic cost matches the built graph. A new registry entry
is tested here by registering it."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from dso_nas.config import load_config
from dso_nas.data import DATASETS, ArrayLoader
from dso_nas.errors import CheckpointError, ConfigError
from dso_nas.models.common import ReductionBlock
from dso_nas.ops import BACKENDS, OPS, graph_cost
from dso_nas.registry import Registry
from dso_nas.run import checkpoint as ckpt
from dso_nas.run.payloads import RetrainPayload, SearchPayload, load_payload, save_payload
from dso_nas.spaces import SPACES
from dso_nas.spaces.archfile import architecture_from_dict
from dso_nas.tasks import TASKS

HW = 8
SPACE_TASK_OPS = [(s, t, o) for s in SPACES.names() if SPACES.get(s).searchable
                  for t in TASKS.names() for o in OPS.names() if SPACES.get(s).accepts_op(OPS.get(o))]


def _partner(space, op):
    """A second op the space accepts, so every supernet block has two ops."""
    if SPACES.get(space).op_family is None:
        return ["avg_pool_3x3", op] if op != "avg_pool_3x3" else [op]
    other = next(n for n in OPS.names() if n != op and SPACES.get(space).accepts_op(OPS.get(n)))
    return [other, op]


#: A dataset with each task's labels (the config refuses a mismatch); only its input side is read.
DATA_FOR = {task: next(n for n, spec in DATASETS.items() if spec.task == task) for task in TASKS.names()}


def _cfg(space, task, ops):
    return load_config(None, [f"model.space={space}", f"task.name={task}", *SPACES.get(space).search_ops_overrides(ops),
                              f"data.name={DATA_FOR[task]}", f"data.image_size={HW}",
                              "model.mobile.first_conv=4", "model.mobile.first_block=4",
                              "model.mobile.widths=[4, 8]", "model.mobile.depths=[2, 1]",
                              "model.mobile.strides=[1, 2]", "model.mobile.last_conv=8",
                              "model.in_channels=1", "model.stem_channels=4",
                              "model.darts.channels=4", "model.darts.layers=3", "model.darts.steps=2",
                              "model.darts.eval_channels=4", "model.darts.eval_layers=3",
                              "model.stages=2", "model.blocks=[1, 1]", "model.channels=[4, 8]", "model.levels=2",
                              "model.num_classes=3", "retrain.dropout=0", "retrain.drop_path=0",
                              "retrain.aux_weight=0"])


def _forward_backward(net, x, task, label):
    loss_fn = task.loss()
    with autograd.record():
        loss, main = task.objective(loss_fn, net(x), label)
    loss.backward()
    grads = [p.grad() for p in net.collect_params().values() if p.grad_req != "null"]
    assert all(np.isfinite(g.asnumpy()).all() for g in grads)
    return main


@pytest.mark.parametrize("space_name,task_name,op", SPACE_TASK_OPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_supernet_and_derived_net_build_run_and_cost(space_name, task_name, op, backend):
    space, task = SPACES.get(space_name), TASKS.get(task_name)
    cfg = _cfg(space_name, task_name, _partner(space_name, op))
    x = mx.nd.array(np.random.RandomState(0).uniform(size=(2, 1, HW, HW)))
    label = mx.nd.array(np.random.RandomState(1).randint(0, 3, task.label_shape(2, HW, HW)))
    net = space.build_supernet(cfg, backend=backend, head=task.head(cfg, backend))
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    assert _forward_backward(net, x, task, label).shape[:2] == (2, 3)
    lambdas = [np.random.RandomState(i).uniform(size=p.shape) * (np.arange(p.shape[0]) % 3 != 0)
               for i, p in enumerate(net.lambda_params())]
    arch = architecture_from_dict(space.derive(cfg, lambdas, {}).to_dict())
    derived = space.build_net(arch, cfg, width_mult=1.0, backend=backend, head=task.head(cfg, backend))
    derived.initialize(mx.init.Xavier())
    derived.hybridize(static_alloc=True)
    assert _forward_backward(derived, x, task, label).shape[:2] == (2, 3)
    if backend == "reference":  # the cost model is checked on the reference form
        assert graph_cost(net, (1, 1, HW, HW)).params == net.cost((HW, HW))["total"].params
        measured = graph_cost(derived, (1, 1, HW, HW))
        analytic = space.net_cost(arch, cfg, 1.0, (HW, HW), task.head_cost(cfg))["total"]
        assert (measured.params, measured.flops) == (analytic.params, analytic.flops)


@pytest.mark.parametrize("name", OPS.names())
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_builds_and_costs_at_any_stride_and_width(name, stride):
    spec = OPS.get(name)
    c_out = 6 if spec.changes_width else 4
    x = mx.nd.random.uniform(shape=(2, 4, 7, 7))
    x.attach_grad()  # a parameter-free op (pooling, identity, zeros) is differentiable only through its input
    for backend in BACKENDS:
        block = spec.build(4, stride, affine=True, c_out=c_out, backend=backend)
        block.initialize()
        block.hybridize()
        with autograd.record():
            y = block(x)
        y.backward()
        assert y.shape[1] == c_out
    ref = spec.build(4, stride, affine=True, c_out=c_out)
    ref.initialize()
    measured, analytic = graph_cost(ref, (1, 4, 7, 7)), spec.cost(4, 7, 7, stride, c_out=c_out)
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)
    if not spec.changes_width:
        with pytest.raises(ValueError, match="keeps the width"):
            spec.build(4, stride, c_out=5)


def test_config_choices_come_from_the_registries():
    assert load_config(None, ["model.space=normal"]).model.space == "normal"  # alias accepted
    with pytest.raises(ConfigError, match="dense"):
        load_config(None, ["model.space=dartsnet"])
    with pytest.raises(ConfigError, match="classification"):
        load_config(None, ["task.name=detection"])
    with pytest.raises(ConfigError, match=str(list(DATASETS.choices()))[1:-1].split(",")[0]):
        load_config(None, ["data.name=cityscapes"])
    with pytest.raises(ConfigError, match="data.name=voc has segmentation labels: set task.name=segmentation"):
        load_config(None, ["data.name=voc"])
    with pytest.raises(ConfigError, match="model.ops"):
        load_config(None, ["model.ops=[sep_conv_3x3, conv_9x9]"])


def test_registry_aliases_and_duplicates():
    reg = Registry("thing", "a.b")
    reg.register("one", 1, aliases=("uno",))

    @reg.register("two")
    def two():
        return 2

    assert reg.get("uno") == 1 and reg.get("two") is two and reg.names() == ("one", "two")
    assert reg.choices() == ("one", "two", "uno") and "uno" in reg and len(reg) == 2
    with pytest.raises(ValueError, match="twice"):
        reg.register("uno", 3)
    with pytest.raises(ConfigError, match="unknown thing 'three' \\(config key 'a.b'\\); valid: one, two, uno"):
        reg.get("three")


def test_every_dataset_spec_is_complete():
    cfg = load_config(None, [])
    for name, spec in DATASETS.items():
        assert len(spec.mean) == len(spec.std) == spec.channels and spec.num_classes > 1, name
        assert spec.input_side(cfg) > 0 and callable(spec.open) and callable(spec.check), name
        if hasattr(spec, "augment"):  # in-memory datasets augment in numpy; RecordIO in its iterator
            assert spec.augment(cutout=3).cutout == 3


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_together_are_the_whole_batch(world):
    rng = np.random.RandomState(0)
    x, y = rng.randint(0, 255, size=(23, 4, 4, 1)).astype(np.uint8), rng.randint(0, 3, 23)
    loader = ArrayLoader(x, y, 8, shuffle=True, augment=DATASETS.get("fashion_mnist").augment(2),
                         mean=(0.5,), std=(0.5,), seed=3)
    whole = list(loader.epoch(1, 1))
    parts = [list(loader.shard(r, world).epoch(1, 1)) for r in range(world)]
    assert all(len(p) == len(whole) for p in parts) and len(loader.shard(0, world)) == len(loader)
    for k, (data, label) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([p[k][0].asnumpy() for p in parts]), data.asnumpy())
        np.testing.assert_array_equal(np.concatenate([p[k][1].asnumpy() for p in parts]), label.asnumpy())
    with pytest.raises(ConfigError, match="cannot be split"):
        ArrayLoader(x, y, 2, shuffle=False, augment=None, mean=(0.5,), std=(0.5,), seed=0).shard(0, 3)


def _search_payload(**kw):
    base = dict(config={"seed": 1}, net={"w": np.ones(2)}, pre_trainer=None, w_trainer=b"x", lam_trainer=None,
                phase="search", epoch=2, position=3, history=[], unchanged=0, support=None,
                elapsed={"pretrain": 1.0, "search": 2.0}, seed=1)
    base.update(kw)
    return SearchPayload(**base)


def test_payloads_round_trip_and_refuse_the_wrong_kind(tmp_path):
    path = str(tmp_path / "search.ckpt")
    save_payload(path, _search_payload())
    back = load_payload(path, SearchPayload)
    assert (back.phase, back.epoch, back.position, back.w_trainer, back.version) == ("search", 2, 3, b"x", 2)
    with pytest.raises(CheckpointError, match="is a search checkpoint, not a retrain one"):
        load_payload(path, RetrainPayload)
    # a file written before the payloads were typed (no version field) still loads
    raw = dict(vars(_search_payload()), kind="search")
    raw.pop("version")
    ckpt.save_checkpoint(path, raw)
    assert load_payload(path, SearchPayload).version == 1
    raw.pop("phase")
    ckpt.save_checkpoint(path, raw)
    with pytest.raises(CheckpointError, match="phase"):
        load_payload(path, SearchPayload)


@pytest.mark.parametrize("stride,dilation", [(2, 1), (1, 2)])
def test_reduction_block_stride_or_dilation(stride, dilation):
    block = ReductionBlock(4, 8, stride=stride, dilation=dilation)
    block.initialize()
    y = block(mx.nd.zeros((1, 4, 9, 9)))
    assert y.shape[1:] == block.out_shape(9, 9) == ((8, 5, 5) if stride == 2 else (8, 9, 9))
    measured, analytic = graph_cost(block, (1, 4, 9, 9)), block.cost(9, 9)
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)


def test_derived_net_exposes_its_stage_features():
    cfg = _cfg("dense", "classification", ["sep_conv_3x3"])
    space, task = SPACES.get("dense"), TASKS.get("classification")
    arch = space.baseline("full", cfg, keep_rate=1.0, seed=0)
    net = space.build_net(arch, cfg, width_mult=1.0, backend="reference", head=task.head(cfg, "reference"))
    net.initialize()
    maps = net.features(mx.nd, mx.nd.zeros((1, 1, 16, 16)))
    assert [m.shape for m in maps] == [(1, 8, 8, 8), (1, 8, 8, 8)]
    assert net.output_strides == [2, 2]


QUIET_SCRIPT = """
import os
from dso_nas.quiet import filter_native_stderr
filter_native_stderr()
import mxnet as mx
from mxnet import autograd
from dso_nas.ops import pool2d
x = mx.nd.random.uniform(shape=(1, 8, 6, 6)); x.attach_grad()
with autograd.record():
    y = pool2d(mx.nd, x, "avg", 8, 3, 1, "onednn")
y.backward(); mx.nd.waitall()
os.write(2, b"native line kept\\n")
import sys; print("python line kept", file=sys.stderr)
"""


@pytest.mark.skipif(not mx.runtime.Features().is_enabled("MKLDNN"), reason="the chatter is oneDNN's")
@pytest.mark.parametrize("quiet", [True, False])
def test_mxnet_info_chatter_is_filtered(quiet):
    env = dict(os.environ, DSO_NAS_MXNET_INFO="0" if quiet else "1")
    err = subprocess.run([sys.executable, "-c", QUIET_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=120).stderr
    assert "native line kept" in err and "python line kept" in err
    assert ("prop_kind is forward_scoring" in err) is not quiet


def test_latency_probe_times_the_deployed_net():
    from dso_nas.run.nets import build_derived, inference_config
    from dso_nas.run.parts import parts_of

    cfg = _cfg("dense", "classification", ["sep_conv_3x3"])
    cfg.retrain.aux_weight, cfg.retrain.dropout, cfg.retrain.drop_path = 0.4, 0.5, 0.3
    arch = SPACES.get("dense").baseline("full", cfg, keep_rate=1.0, seed=0)
    parts = parts_of(cfg)
    trained, deployed = build_derived(arch, cfg, 1.0, parts), build_derived(arch, inference_config(cfg), 1.0, parts)
    assert trained.aux_head is not None and trained.classifier.dropout == 0.5
    assert deployed.aux_head is None and deployed.classifier.dropout == 0 and deployed.drop_path == 0
    assert cfg.retrain.aux_weight == 0.4  # the run's own config is untouched
