"""Segmentation (TPAMI §4.4): the DeepLabv3 head, output stride 16 by dilation, GluonCV's loss
with the ignore label, the mIoU metric against a hand-computed confusion matrix, the VOC / SBD /
COCO loaders on tiny folders written in the real formats, bad folders, train.init, mirror mode."""
import dataclasses
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from PIL import Image

from dso_nas.config import load_config
from dso_nas.data import dataset_spec
from dso_nas.errors import CheckpointError, ConfigError, DatasetNotFoundError, UserError
from dso_nas.models.common import reduction_plan
from dso_nas.ops import OPS, graph_cost
from dso_nas.run.nets import build_derived, build_supernet, inference_config
from dso_nas.run.init import init_width, load_init, read_init
from dso_nas.run.parts import parts_of
from dso_nas.spaces import SPACES
from dso_nas.spaces.archfile import architecture_from_dict
from dso_nas.tasks import TASKS
from dso_nas.tasks.segmentation import DeepLabV3Head, SegmentationMeter, deeplab_head_cost
from tolerance import assert_close_rel, net_rtol

from segfiles import save_palette_png, tiny_coco, tiny_sbd, tiny_voc

SEG = TASKS.get("segmentation")
SIDE = 32


def _cfg(root="", *extra):
    return load_config(None, ["task.name=segmentation", "data.name=voc", f"data.root={root}",
                              f"data.image_size={SIDE}", f"data.base_size={SIDE}", "model.stem=imagenet",
                              "model.stem_channels=8", "model.stages=4", "model.blocks=[1, 1, 1, 1]",
                              "model.channels=[8, 8, 16, 16]", "model.levels=2",
                              "model.ops=[sep_conv_3x3, max_pool_3x3]", "model.output_stride=16",
                              "model.num_classes=5", "train.batch_size=2", "train.eval_batch_size=2",
                              "retrain.batch_size=2", "retrain.aux_weight=0", "retrain.dropout=0.1",
                              "retrain.drop_path=0", "retrain.target_params=0", *extra])


# ----------------------------------------------------------------------------- network

def test_reduction_plan_turns_the_last_strides_into_dilation():
    assert reduction_plan("imagenet", 3) == ((2, 1, 1),) * 3
    assert reduction_plan("imagenet", 3, 16) == ((2, 1, 1), (2, 1, 1), (1, 1, 2))
    assert reduction_plan("imagenet", 3, 8) == ((2, 1, 1), (1, 1, 2), (1, 2, 4))
    assert reduction_plan("imagenet", 3, 32) == ((2, 1, 1),) * 3
    for bad in (12, 2, 64):
        with pytest.raises(ConfigError, match="output_stride"):
            reduction_plan("imagenet", 3, bad)
    with pytest.raises(ConfigError, match="output_stride"):
        load_config(None, ["model.output_stride=24"])
    with pytest.raises(ConfigError, match="label_smoothing is a classification setting"):
        _cfg("", "retrain.label_smoothing=0.1")
    with pytest.raises(ConfigError, match="mobile space has no dilated form"):
        load_config(None, ["model.space=mobile", "model.ops=[mbconv_3x3_e3]", "model.output_stride=16"])


@pytest.mark.parametrize("op", [n for n in OPS.names() if OPS.get(n).family == "sep_conv"])
def test_dilated_op_dilates_its_depthwise_conv_in_both_forms(op):
    x = mx.nd.random.uniform(shape=(1, 4, 9, 9))
    blocks = [OPS.get(op).build(4, 1, backend=b, dilation=2) for b in ("reference", "onednn")]
    for block in blocks:
        block.initialize(mx.init.Constant(0.1))
        assert block.depthwise._kwargs["dilate"] == (2, 2)
    ref, fast = (b(x) for b in blocks)
    assert ref.shape == (1, 4, 9, 9)
    assert_close_rel(fast.asnumpy(), ref.asnumpy(), net_rtol(blocks[0], x.shape), op)  # the same sums, reordered
    plain = OPS.get(op).build(4, 1)
    plain.initialize(mx.init.Constant(0.1))
    assert not np.allclose(plain(x).asnumpy(), ref.asnumpy())  # the dilation changes what is read
    assert graph_cost(blocks[0], (1, 4, 9, 9)) == graph_cost(plain, (1, 4, 9, 9))


def test_supernet_and_derived_net_reach_output_stride_16_with_a_dilated_last_stage():
    cfg = _cfg()
    parts = dataclasses.replace(parts_of(cfg), backend="reference")  # graph_cost reads the reference form
    net = build_supernet(cfg, parts)
    net.initialize()
    x = mx.nd.random.uniform(shape=(2, 3, SIDE, SIDE))
    maps, h = [], x
    for layer in net.features:
        h = layer(h)
        maps.append(h.shape)
    assert maps[-1] == (2, 16, SIDE // 16, SIDE // 16)  # 32 -> 8 (stem) -> 4 -> 2 -> 2 (dilated)
    last = net.search_blocks()[-1]
    assert all(op.depthwise._kwargs["dilate"] == (2, 2) for op in last._op_blocks if hasattr(op, "depthwise"))
    assert net(x).shape == (2, 5, SIDE, SIDE)
    measured, analytic = graph_cost(net, (1, 3, SIDE, SIDE)), net.cost((SIDE, SIDE))["total"]
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)
    lambdas = [np.ones(p.shape) for p in net.lambda_params()]
    arch = architecture_from_dict(parts.space.derive(cfg, lambdas, {}).to_dict())
    derived = build_derived(arch, inference_config(cfg), 1.0, parts)
    derived.initialize()
    assert derived.output_strides == [8, 16, 16, 16]
    assert [m.shape[2] for m in derived.features(mx.nd, x)] == [4, 2, 2, 2]
    measured = graph_cost(derived, (1, 3, SIDE, SIDE))
    analytic = parts.space.net_cost(arch, cfg, 1.0, (SIDE, SIDE), SEG.head_cost(cfg))["total"]
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)


def test_deeplab_head_shapes_and_cost():
    head = DeepLabV3Head(24, 21, (6, 12, 18), feature_side=5, out_side=65, dropout=0.1)
    head.initialize()
    head.hybridize()
    assert head(mx.nd.zeros((2, 24, 5, 5))).shape == (2, 21, 65, 65)
    measured, analytic = graph_cost(head, (1, 24, 5, 5)), deeplab_head_cost(24, 21, (6, 12, 18), 5, 5, 65)
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops) == (head.cost(5, 5).params,
                                                                                     head.cost(5, 5).flops)
    rates = [b[0]._kwargs["dilate"] for b in list(head.aspp.concurent._children.values())[1:4]]
    assert rates == [(6, 6), (12, 12), (18, 18)]


def test_aux_fcn_head_is_an_option():
    cfg = _cfg("", "retrain.aux_weight=0.4", "retrain.aux_stage=2")
    net = build_derived(SPACES.get("dense").baseline("full", cfg, keep_rate=1.0, seed=0), cfg, 1.0, parts_of(cfg))
    net.initialize()
    main, aux = net(mx.nd.zeros((1, 3, SIDE, SIDE)))
    assert main.shape == aux.shape == (1, 5, SIDE, SIDE)
    assert type(net.aux_head).__name__ == "FCNAuxHead"


# ----------------------------------------------------------------------------- loss and metric

def test_loss_ignores_the_border_label():
    loss_fn = SEG.loss()
    pred = mx.nd.random.normal(shape=(2, 3, 4, 4))
    label = mx.nd.array(np.random.RandomState(0).randint(0, 3, (2, 4, 4)))
    label[1] = -1  # the second image is all border
    pred.attach_grad()
    with autograd.record():
        loss = loss_fn(pred, label)
    loss.backward()
    assert loss[1].asscalar() == 0 and loss[0].asscalar() > 0
    assert np.abs(pred.grad[1].asnumpy()).max() == 0 and np.abs(pred.grad[0].asnumpy()).max() > 0


def _logits(pred: np.ndarray, classes: int) -> mx.nd.NDArray:
    return mx.nd.array(np.eye(classes)[pred].transpose(0, 3, 1, 2))


def test_miou_against_a_hand_computed_confusion_matrix():
    rng = np.random.RandomState(3)
    k = 4
    label = rng.randint(-1, k, (3, 6, 7))
    label[label == 3] = 0  # class 3 never labelled ...
    pred = rng.randint(0, k, (3, 6, 7))
    valid = label >= 0
    confusion = np.zeros((k, k))
    np.add.at(confusion, (label[valid], pred[valid]), 1)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    expected_miou = np.mean(inter / np.maximum(union, 1e-12))  # ... but predicted: IoU 0 counts in the mean
    meter = SEG.metric()
    meter.update(1.5, _logits(pred, k), mx.nd.array(label))
    res = meter.result()
    assert res["pixel_accuracy"] == pytest.approx(inter.sum() / valid.sum())
    assert res["miou"] == pytest.approx(expected_miou)
    assert res["loss"] == pytest.approx(0.5)
    # two meters over halves, merged or summed through their states, equal one meter over all
    a, b = SEG.metric(), SEG.metric()
    a.update(1.0, _logits(pred[:1], k), mx.nd.array(label[:1]))
    b.update(0.5, _logits(pred[1:], k), mx.nd.array(label[1:]))
    summed = SegmentationMeter()
    summed.load_state(np.add(a.state(), b.state()))
    a.merge(b)
    assert a.result() == pytest.approx(res) and summed.result() == pytest.approx(res)


# ----------------------------------------------------------------------------- data

def test_voc_loader_reads_train_list_and_pads_validation(tmp_path):
    written = tiny_voc(str(tmp_path), n_train=4, n_val=2, size=[(24, 30), (32, 20)], num_classes=5)
    cfg = _cfg(str(tmp_path))
    loaders, shape = dataset_spec("voc").open(cfg, retrain=True)
    assert shape == (3, SIDE, SIDE) and loaders.eval_split == "val"
    assert loaders.full.num_samples == 4  # train.txt only: GluonCV's 'train' (trainval.txt) holds val too
    data, label = next(loaders.full.epoch(0))
    assert data.shape == (2, 3, SIDE, SIDE) and label.shape == (2, SIDE, SIDE)
    assert set(np.unique(label.asnumpy())) <= set(range(-1, 5))
    # a batch is a function of (seed, epoch, index): resuming at batch 1 reads the same batch 1
    again = list(loaders.full.epoch(3, 1))[0]
    first = list(loaders.full.epoch(3))[1]
    np.testing.assert_array_equal(again[0].asnumpy(), first[0].asnumpy())
    np.testing.assert_array_equal(again[1].asnumpy(), first[1].asnumpy())
    images, masks = [], []
    for x, y in loaders.test.epoch(0):
        images.append(x.asnumpy())
        masks.append(y.asnumpy())
    masks = np.concatenate(masks)
    for i, name in enumerate(written.splits["val"]):
        mask = written.items[name][1].astype(np.int64)
        mask[mask == 255] = -1
        h, w = mask.shape
        np.testing.assert_array_equal(masks[i, :h, :w], mask)  # full size, border 255 -> -1
        assert (masks[i, h:, :] == -1).all() and (masks[i, :, w:] == -1).all()  # padding is ignored


def test_voc_aug_trains_on_sbd_and_voc_train_without_voc_val(tmp_path):
    voc = tiny_voc(str(tmp_path), n_train=3, n_val=2, size=(SIDE, SIDE), num_classes=5)
    val, train = voc.splits["val"], voc.splits["train"]
    sbd = tiny_sbd(str(tmp_path), n=3, size=(SIDE, SIDE), num_classes=5, names=[val[0], train[0], "sbd_only"])
    cfg = _cfg(str(tmp_path), "data.name=voc_aug")
    spec = dataset_spec("voc_aug")
    dataset, _ = spec.train_set(str(tmp_path), cfg)
    names = {os.path.splitext(os.path.basename(p))[0] for part in dataset.parts for p in part.images}
    assert names == (set(train) | {"sbd_only"}) and not names & set(val)
    assert len(dataset) == 4 and sbd is not None
    loaders, _ = spec.open(cfg, retrain=False)
    assert loaders.weights.num_samples + loaders.lambdas.num_samples == 4


def test_coco_loader_works_on_a_read_only_folder(tmp_path, monkeypatch):
    root = tmp_path / "coco"
    written = tiny_coco(str(root), n_train=3, n_val=2, form="rle")
    before = sorted(str(p) for p in root.rglob("*"))
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p) == str(root) else
                        real_access(p, mode))
    cfg = _cfg(str(root), "data.name=coco", "data.image_size=64", "data.base_size=64")
    loaders, _ = dataset_spec("coco").open(cfg, retrain=True)
    assert sorted(str(p) for p in root.rglob("*")) == before  # nothing written beside the dataset
    assert list((home / ".cache" / "dso_nas").glob("coco-*/coco_root/annotations/train_ids.mx"))
    assert loaders.full.num_samples == len(written.kept["train"])
    masks = np.concatenate([y.asnumpy() for _, y in loaders.test.epoch(0)])
    for i, (_, _, expected) in enumerate(written.kept["val"]):
        h, w = expected.shape
        np.testing.assert_array_equal(masks[i, :h, :w], expected)


def test_data_extra_adds_training_sets(tmp_path):
    tiny_voc(str(tmp_path / "a"), n_train=3, n_val=1, size=(SIDE, SIDE), num_classes=5)
    tiny_voc(str(tmp_path / "b"), n_train=2, n_val=1, size=(SIDE, SIDE), num_classes=5, seed=1)
    cfg = _cfg(str(tmp_path / "a"), f"data.extra=[voc:{tmp_path / 'b'}]")
    loaders, _ = dataset_spec("voc").open(cfg, retrain=True)
    assert loaders.full.num_samples == 5 and len(list(loaders.full.epoch(0))) == 3
    with pytest.raises(ConfigError, match="name:root"):
        dataset_spec("voc").open(_cfg(str(tmp_path / "a"), "data.extra=[voc]"), retrain=True)


def test_bad_segmentation_folders_end_in_one_line(tmp_path):
    spec = dataset_spec("voc")
    with pytest.raises(DatasetNotFoundError, match="no VOC2012/ folder"):
        spec.check(str(tmp_path))
    written = tiny_voc(str(tmp_path), n_train=3, n_val=1, size=(SIDE, SIDE), num_classes=5)
    with pytest.raises(DatasetNotFoundError, match="no VOCaug/dataset/ folder"):
        dataset_spec("voc_aug").check(str(tmp_path))
    name = written.splits["train"][1]
    os.remove(os.path.join(tmp_path, "VOC2012", "JPEGImages", name + ".jpg"))
    with pytest.raises(DatasetNotFoundError, match=f"train.txt names {name} but .* is missing"):
        spec.check(str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="instances_train2017.json"):
        dataset_spec("coco").check(str(tmp_path))


def test_a_mask_of_another_size_is_one_line(tmp_path):
    written = tiny_voc(str(tmp_path), n_train=2, n_val=1, size=(SIDE, SIDE), num_classes=5)
    name = written.splits["train"][0]
    save_palette_png(os.path.join(tmp_path, "VOC2012", "SegmentationClass", name + ".png"),
                     np.zeros((SIDE, SIDE + 3), np.uint8))
    loaders, _ = dataset_spec("voc").open(_cfg(str(tmp_path)), retrain=True)
    with pytest.raises(UserError, match=f"{name}.png is {SIDE + 3}x{SIDE} but its image"):
        list(loaders.full.epoch(0))
    assert Image.open(os.path.join(tmp_path, "VOC2012", "JPEGImages", name + ".jpg")).size == (SIDE, SIDE)


# ----------------------------------------------------------------------------- transfer, mirror

def test_train_init_loads_the_backbone_and_leaves_the_head(tmp_path):
    from dso_nas.run import checkpoint as ckpt

    cls_cfg = _cfg("", "task.name=classification", "data.name=imagenet", "model.output_stride=0")
    seg_cfg = _cfg()
    source = build_supernet(cls_cfg, parts_of(cls_cfg))
    source.initialize(mx.init.Uniform(0.5))
    source(mx.nd.zeros((1, 3, SIDE, SIDE)))
    path = str(tmp_path / "search.ckpt")
    ckpt.save_checkpoint(path, {"kind": "search", "net": ckpt.net_arrays(source)})
    target = build_supernet(seg_cfg, parts_of(seg_cfg))
    target.initialize()
    target(mx.nd.zeros((1, 3, SIDE, SIDE)))
    loaded, total = load_init(target, read_init(_cfg("", f"train.init={path}")), path)
    src, dst = source._collect_params_with_prefix(), target._collect_params_with_prefix()
    backbone = [k for k in dst if k.startswith(("features.", "final."))]  # the final BN is the backbone's
    assert loaded == len(backbone) < total
    for key in backbone:
        np.testing.assert_array_equal(src[key].data().asnumpy(), dst[key].data().asnumpy())
    assert init_width(read_init(_cfg("", f"train.init={path}"))) is None  # a search checkpoint has no width
    ckpt.save_checkpoint(path, {"kind": "retrain", "net": {"nothing": np.zeros(1)}, "width_mult": 1.25})
    init = read_init(_cfg("", f"train.init={path}"))
    assert init_width(init) == 1.25
    with pytest.raises(UserError, match="none of its"):
        load_init(target, init, path)
    ckpt.save_checkpoint(path, {"kind": "retrain"})
    with pytest.raises(CheckpointError, match="holds no network weights"):
        read_init(_cfg("", f"train.init={path}"))


def test_mirror_mode_runs_the_segmentation_loss():
    from dso_nas.engine.mirror import make_executors, mirror_step

    cfg = _cfg()
    net = build_supernet(cfg, parts_of(cfg))
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((2, 3, SIDE, SIDE)))
    x = mx.nd.random.uniform(shape=(2, 3, SIDE, SIDE))
    y = mx.nd.array(np.random.RandomState(0).randint(-1, 5, (2, SIDE, SIDE)))
    params = [p for p in net.weight_params().values() if p.grad_req != "null"]
    mx.random.seed(7)  # the ASPP's dropout draws the same masks on both paths (it sits in the last segment)
    with autograd.record():
        plain = SEG.loss()(net(x), y)
    plain.backward()
    expected = [p.grad().asnumpy().copy() for p in params]
    trainer = mx.gluon.Trainer(net.weight_params(), "sgd", {"learning_rate": 0.0})
    executors = make_executors(net, (2, 3, SIDE, SIDE), [mx.cpu()], loss=SEG.loss())
    mx.random.seed(7)
    pairs = mirror_step(executors, x, y, trainer, 2)
    rtol = net_rtol(net, x.shape)  # the same sums, threads may split them otherwise (tests/tolerance.py)
    assert_close_rel(pairs[0][0].asnumpy(), plain.asnumpy(), rtol, "loss")
    for p, got, want in zip(params, [p.grad().asnumpy() for p in params], expected):
        assert_close_rel(got, want, rtol, p.name, floor=1e-4)


# ----------------------------------------------------------------------------- end to end

def test_search_retrain_and_report_on_a_tiny_voc_folder(tmp_path):
    import json
    import subprocess
    import sys

    tiny_voc(str(tmp_path / "voc"), n_train=8, n_val=3, size=[(SIDE, SIDE), (28, 24)], num_classes=5)
    common = [f"data.root={tmp_path / 'voc'}", f"data.image_size={SIDE}", f"data.base_size={SIDE}",
              "model.num_classes=5", "train.batch_size=4", "train.eval_batch_size=4", "progress=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def dso(*args):
        proc = subprocess.run([sys.executable, "-m", "dso_nas", *args], capture_output=True, text=True, env=env,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    search = tmp_path / "search"
    dso("search", "--config", "experiments/voc/micro_search.yaml", f"output_dir={search}", "pretrain.epochs=1",
        "search.epochs=1", *common)
    assert "task: segmentation" in (search / "architecture.yaml").read_text()
    retrain = tmp_path / "retrain"
    dso("retrain", "--config", "experiments/voc/micro_retrain.yaml", "--arch", str(search / "architecture.yaml"),
        f"output_dir={retrain}", "retrain.epochs=1", "retrain.batch_size=4", *common)
    result = json.loads((retrain / "result.json").read_text())
    assert 0 <= result["miou"] <= 1 and 0 <= result["pixel_accuracy"] <= 1 and result["eval_split"] == "val"
    assert result["paper_row"] == "DSO-NAS-seg"
    report = dso("report", str(retrain))
    assert "paper DSO-NAS-seg (Table 4)" in report and "76.40" in report and "MobileNet v2" in report
    assert f"{100 * result['miou']:.2f}" in report


def test_missing_voc_folder_is_one_line_from_the_command_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "dso_nas", "search", "--config", "experiments/voc/micro_search.yaml",
                           f"data.root={tmp_path / 'nothing'}", f"output_dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no VOC2012/ folder" in proc.stderr.strip().splitlines()[-1]


def test_segmentation_search_killed_mid_run_resumes_to_the_same_result(tmp_path):
    from test_pipeline import sigterm_resume_matches_straight

    tiny_voc(str(tmp_path / "voc"), n_train=10, n_val=2, size=(SIDE, SIDE), num_classes=5)
    sigterm_resume_matches_straight(["--config", "experiments/voc/micro_search.yaml", f"data.root={tmp_path / 'voc'}",
                                     f"data.image_size={SIDE}", f"data.base_size={SIDE}", "model.num_classes=5",
                                     "train.batch_size=2", "pretrain.epochs=1", "search.epochs=6",
                                     "search.ratio=[1, 1]", "progress=false"], tmp_path)
