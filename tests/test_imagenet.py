"""ImageNet's data path (RecordIO through ImageRecordIter) and its recipe: the packer, the loader,
the D_w / D_λ split, augmentation really applied, resume, bad files, label smoothing, the
linear schedule, top-5, transfer of a CIFAR block, and the chain end to end."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from datafiles import write_idx
from dso_nas.cli import main
from dso_nas.config import load_config
from dso_nas.data import split_indices
from dso_nas.data.imagenet import RecordLoader, _checked_iter, iterator_params
from dso_nas.data.pack import pack_image_folder
from dso_nas.data.recordio import check_record_file, split_record_file
from dso_nas.errors import ConfigError, UserError
from dso_nas.engine.schedules import retrain_schedule
from dso_nas.run.loaders import load_data
from dso_nas.run.nets import retrain_arch
from dso_nas.run.parts import parts_of
from dso_nas.spaces.archfile import load_architecture, save_architecture
from dso_nas.tasks import get_task
from dso_nas.tasks.classification import AccuracyMeter, SmoothedCrossEntropy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
from fashion_mnist_folder import write_folder  # noqa: E402

SMALL = ["data.name=imagenet", "latency.input_size=32", "latency.runs=1", "model.num_classes=10", "data.image_size=24", "data.resize=28",
         "data.weight_fraction=0.8", "train.batch_size=16", "train.eval_batch_size=32", "retrain.batch_size=16",
         "data.threads=1"]
TINY_NET = ["model.stem=imagenet", "model.stem_channels=4", "model.stages=4", "model.blocks=[1, 1, 1, 1]",
            "model.channels=[4, 4, 8, 8]", "model.levels=2", "model.ops=[sep_conv_3x3, max_pool_3x3]",
            "model.scope=share", "progress=false", "pretrain.epochs=1", "search.epochs=1", "retrain.epochs=1",
            "search.ratio=[4, 1]", "search.budget=flops", "retrain.target_params=0", "retrain.aux_weight=0",
            "retrain.batch_size=16", "retrain.schedule=linear", "retrain.lr_min=0", "retrain.label_smoothing=0.1"]


@pytest.fixture(scope="module")
def rec_root(tmp_path_factory):
    """Fashion-MNIST-format images -> ImageFolder (the tool) -> RecordIO (``dso-nas pack``)."""
    base = tmp_path_factory.mktemp("imagenet")
    write_idx(str(base / "idx"), n_train=100, n_test=40, seed=0)
    write_folder(str(base / "folder"), root=str(base / "idx"))
    pack_image_folder(str(base / "folder"), str(base / "rec"), resize=32, workers=1)
    return str(base / "rec")


def _cfg(root, *extra):
    return load_config(None, SMALL + [f"data.root={root}"] + list(extra))


def _labels(loader, epoch=0):
    return np.concatenate([lab.asnumpy() for _, lab in loader.epoch(epoch)])


def test_pack_writes_the_four_files_with_class_labels(rec_root):
    train = check_record_file(os.path.join(rec_root, "train.rec"), os.path.join(rec_root, "train.idx"))
    assert len(train) == 100
    with open(os.path.join(rec_root, "classes.txt")) as f:
        classes = f.read().split()
    assert classes[0].startswith("0_") and classes[9].startswith("9_") and len(classes) == 10
    reader = mx.recordio.MXIndexedRecordIO(train.idx, train.rec, "r")
    header, img = mx.recordio.unpack_img(reader.read_idx(train.keys[0]))
    assert img.shape == (32, 32, 3) and 0 <= header.label < 10


def test_loaders_shapes_split_and_eval_order(rec_root):
    cfg = _cfg(rec_root)
    loaders, shape = load_data(cfg, retrain=False)
    assert shape == (3, 24, 24)
    assert (loaders.weights.num_samples, loaders.lambdas.num_samples, loaders.test.num_samples) == (80, 20, 40)
    data, label = next(loaders.test.epoch(0))
    assert data.shape == (32, 3, 24, 24) and label.shape == (32,)
    assert len(_labels(loaders.test)) == 40  # the short last batch is trimmed (its tail rows are garbage)


def test_split_is_exact_disjoint_and_reused(rec_root, tmp_path):
    src = check_record_file(os.path.join(rec_root, "train.rec"), os.path.join(rec_root, "train.idx"))
    idx = split_indices(len(src), 0.8, seed=3)
    w, lam = split_record_file(src, str(tmp_path), weight_fraction=0.8, seed=3, indices=idx)
    ids = []
    for part in (w, lam):
        r = mx.recordio.MXIndexedRecordIO(part.idx, part.rec, "r")
        ids.append([int(mx.recordio.unpack(r.read_idx(k))[0].id) for k in part.keys])
    assert (len(ids[0]), len(ids[1])) == (80, 20)
    assert not set(ids[0]) & set(ids[1]) and sorted(ids[0] + ids[1]) == sorted(range(100))
    assert ids[0] == [src.keys[i] for i in idx[0]]  # the pack command numbers records 0..N-1
    mtime = os.path.getmtime(w.rec)
    split_record_file(src, str(tmp_path), weight_fraction=0.8, seed=3, indices=idx)
    assert os.path.getmtime(w.rec) == mtime  # an identical split is reused, not rewritten


def test_every_iterator_keyword_is_documented():
    params = iterator_params()
    assert {"random_resized_crop", "pca_noise", "brightness", "seed_aug", "min_random_area"} <= params
    with pytest.raises(ConfigError, match="facebook_aug"):
        _checked_iter(path_imgrec="x.rec", facebook_aug=True)


def _single_image_loader(rec_root, tmp_path, train, augment):
    src = check_record_file(os.path.join(rec_root, "train.rec"), os.path.join(rec_root, "train.idx"))
    from dso_nas.data.recordio import copy_records
    one = copy_records(src, src.keys[:1], str(tmp_path / "one"))
    return RecordLoader(one, 1, train=train, seed=5, image_size=24, resize=28, augment=augment, threads=1,
                        num_classes=10)


def test_augmentation_is_really_applied(rec_root, tmp_path):
    aug = {"min_area": 0.08, "jitter": 0.4, "lighting": 0.1, "flip": True}
    train = _single_image_loader(rec_root, tmp_path, True, aug)
    kw = train.iterator_kwargs(0)
    assert (kw["min_random_area"], kw["brightness"], kw["contrast"], kw["saturation"], kw["pca_noise"]) == \
        (0.08, 0.4, 0.4, 0.4, 0.1)
    views = [next(train.epoch(e))[0].asnumpy() for e in range(4)]
    assert all(not np.array_equal(views[0], v) for v in views[1:])  # other crops / colours every epoch
    np.testing.assert_array_equal(views[1], next(train.epoch(1))[0].asnumpy())  # yet a function of the epoch
    plain = _single_image_loader(rec_root, tmp_path, True, None)
    np.testing.assert_array_equal(next(plain.epoch(0))[0].asnumpy(), next(plain.epoch(1))[0].asnumpy())
    ev = _single_image_loader(rec_root, tmp_path, False, aug)
    np.testing.assert_array_equal(next(ev.epoch(0))[0].asnumpy(), next(ev.epoch(3))[0].asnumpy())


@pytest.mark.parametrize("threads", [1, 2])
def test_epochs_are_reproducible_and_resume_at_a_batch(rec_root, threads):
    loaders, _ = load_data(_cfg(rec_root, f"data.threads={threads}"), retrain=True)
    full = loaders.full
    a = [(d.asnumpy(), l.asnumpy()) for d, l in full.epoch(2)]
    b = [(d.asnumpy(), l.asnumpy()) for d, l in full.epoch(2, start=3)]
    assert len(a) == 7 and len(b) == 4
    for (x, y), (u, v) in zip(a[3:], b):
        np.testing.assert_array_equal(x, u)
        np.testing.assert_array_equal(y, v)
    assert not np.array_equal(_labels(full, 0), _labels(full, 1))  # a new order every epoch
    assert sorted(_labels(full, 0)) == sorted(_labels(full, 1))


def test_shards_cover_the_evaluation_file_and_train_in_step(rec_root):
    loaders, _ = load_data(_cfg(rec_root, "retrain.batch_size=24"), retrain=True)
    parts = [loaders.test.shard(r, 2) for r in range(2)]  # evaluation: every record once
    assert sum(p.num_samples for p in parts) == 40 and parts[0].batch_size == 16
    assert sorted(np.concatenate([_labels(p) for p in parts])) == sorted(_labels(loaders.test))
    train = [loaders.full.shard(r, 3) for r in range(3)]  # 100 records: parts of 34, 34, 32
    assert [p.num_samples for p in train] == [34, 34, 32]
    assert [len(p) for p in train] == [4, 4, 4]  # as many steps on every worker (the smallest part's)
    assert [[d.shape[0] for d, _ in p.epoch(0)] for p in train] == [[8, 8, 8, 8]] * 3
    with pytest.raises(ConfigError, match="batch of 24 cannot be split evenly over 5"):
        loaders.full.shard(0, 5)


def _copy_root(rec_root, tmp_path):
    out = tmp_path / "root"
    out.mkdir()
    for name in ("train.rec", "train.idx", "val.rec", "val.idx"):
        (out / name).write_bytes(open(os.path.join(rec_root, name), "rb").read())
    return out


def test_bad_files_end_in_one_line(rec_root, tmp_path):
    root = _copy_root(rec_root, tmp_path)
    rec = root / "train.rec"
    data = rec.read_bytes()
    rec.write_bytes(data[: len(data) // 2])  # truncated: the index points past the end
    with pytest.raises(UserError, match="truncated RecordIO file .*train.rec"):
        load_data(_cfg(str(root)), retrain=True)
    rec.write_bytes(data)
    idx = root / "val.idx"
    lines = idx.read_text().splitlines()
    idx.write_text("\n".join(lines[:-1] + ["39\t17"]) + "\n")  # an offset where no record starts
    with pytest.raises(UserError, match="val.rec: no record starts at offset 17"):
        load_data(_cfg(str(root)), retrain=True)
    idx.write_text("a b c\n")
    with pytest.raises(UserError, match="malformed RecordIO index .*val.idx"):
        load_data(_cfg(str(root)), retrain=True)
    os.remove(idx)
    with pytest.raises(UserError, match="val.idx"):
        load_data(_cfg(str(root)), retrain=True)
    with pytest.raises(UserError, match="ImageFolder tree.*dso-nas pack"):
        load_data(_cfg(os.path.join(os.path.dirname(rec_root), "folder")), retrain=True)


def test_labels_beyond_num_classes_are_refused(rec_root):
    loaders, _ = load_data(_cfg(rec_root, "model.num_classes=3"), retrain=True)
    with pytest.raises(UserError, match="model.num_classes"):
        _labels(loaders.full)


def test_cli_errors_are_one_line(rec_root, tmp_path, capsys):
    assert main(["search", *SMALL, "data.root=" + str(tmp_path / "none"), f"output_dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert "ImageNet RecordIO file missing" in err and "Traceback" not in err
    assert main(["pack", str(tmp_path / "none"), str(tmp_path / "out")]) == 2
    assert "ImageFolder split missing" in capsys.readouterr().err


def test_label_smoothing_loss():
    pred = mx.nd.array(np.random.default_rng(0).normal(size=(4, 5)))
    label = mx.nd.array([0, 3, 4, 1])
    logp = pred.asnumpy() - np.log(np.exp(pred.asnumpy()).sum(1, keepdims=True))
    target = np.full((4, 5), 0.1 / 5)
    target[np.arange(4), label.asnumpy().astype(int)] += 0.9
    np.testing.assert_allclose(SmoothedCrossEntropy(0.1)(pred, label).asnumpy(), -(target * logp).sum(1), rtol=1e-5)
    task = get_task("classification")
    np.testing.assert_allclose(task.loss(label_smoothing=0.0)(pred, label).asnumpy(),
                               -logp[np.arange(4), [0, 3, 4, 1]], rtol=1e-5)


def test_top5_accuracy():
    out = mx.nd.array(np.tile(np.arange(10.0), (3, 1)))  # class 9 first, then 8, 7, 6, 5
    meter = AccuracyMeter()
    meter.update(0.0, out, mx.nd.array([9, 5, 2]))
    r = meter.result()
    assert r["acc"] == pytest.approx(1 / 3) and r["top5_acc"] == pytest.approx(2 / 3)
    small = AccuracyMeter()
    small.update(0.0, mx.nd.ones((2, 3)), mx.nd.array([0, 1]))
    assert "top5_acc" not in small.result()


def test_linear_schedule_decays_to_zero():
    cfg = load_config("experiments/imagenet/retrain.yaml" if os.getcwd() == REPO else
                      os.path.join(REPO, "experiments/imagenet/retrain.yaml"))
    assert (cfg.retrain.schedule, cfg.retrain.lr_max, cfg.retrain.lr_min, cfg.retrain.label_smoothing) == \
        ("linear", 0.5, 0.0, 0.1)
    sched = retrain_schedule(cfg.retrain, iters_per_epoch=10)
    total = 10 * cfg.retrain.epochs
    assert sched(0) == pytest.approx(0.5)
    assert sched(total // 2) == pytest.approx(0.25, rel=1e-3)
    assert sched(total) == pytest.approx(0.0, abs=1e-6)


def test_paper_imagenet_configs():
    s = load_config(os.path.join(REPO, "experiments/imagenet/search.yaml"))
    assert (s.model.blocks, s.model.channels, s.model.stem, s.model.stem_channels) == \
        ([2, 2, 13, 6], [28, 56, 112, 224], "imagenet", 28)
    assert (s.data.weight_fraction, s.pretrain.epochs, s.pretrain.lr, s.pretrain.wd, s.train.batch_size) == \
        (0.8, 30, 0.1, 4e-5, 256)
    assert (s.search.gamma, s.search.budget, s.search.ratio, s.model.scope) == (0.01, "latency", [4, 1], "share")
    r = load_config(os.path.join(REPO, "experiments/imagenet/retrain.yaml"))
    assert (r.retrain.epochs, r.retrain.batch_size, r.retrain.wd, r.retrain.target_flops, r.retrain.layout) == \
        (240, 1024, 4e-5, 600e6, "config")


def test_a_cifar_share_block_transfers_and_a_full_one_is_refused(tmp_path):
    cifar = load_config(None, ["model.stages=3", "model.blocks=[2, 2, 2]", "model.channels=[8, 16, 32]"])
    parts = parts_of(cifar)
    share = parts.space.baseline("random-share", cifar, keep_rate=0.5, seed=0)
    full = parts.space.baseline("random-full", cifar, keep_rate=0.5, seed=0)
    imagenet = load_config(os.path.join(REPO, "experiments/imagenet/retrain.yaml"))
    moved = retrain_arch(share, imagenet, parts_of(imagenet))
    assert (moved.stem, list(moved.blocks), list(moved.channels)) == ("imagenet", [2, 2, 13, 6], [28, 56, 112, 224])
    assert moved.cells == share.cells and moved.meta["transferred_from"]["stem"] == "cifar"
    save_architecture(moved, str(tmp_path / "a.yaml"))
    assert load_architecture(str(tmp_path / "a.yaml")) == moved  # the file written is the net built
    with pytest.raises(ConfigError, match="full-scope architecture .* cannot be laid on"):
        retrain_arch(full, imagenet, parts_of(imagenet))
    assert retrain_arch(share, cifar, parts) is share  # retrain.layout=arch keeps the file's layout


def test_info_of_a_transferred_architecture_meets_600m_flops(tmp_path):
    cifar = load_config(None, [])
    arch = parts_of(cifar).space.baseline("random-share", cifar, keep_rate=0.4, seed=1)
    save_architecture(arch, str(tmp_path / "cifar.yaml"))
    out = subprocess.run([sys.executable, "-m", "dso_nas", "info", "--config", "experiments/imagenet/retrain.yaml",
                          "--arch", str(tmp_path / "cifar.yaml"), "--json"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-1000:]
    info = json.loads(out.stdout)
    assert info["input"] == [3, 224, 224] and 500e6 < info["flops"] <= 600e6 and info["blocks"] == 23


def test_search_and_retrain_end_to_end(rec_root, tmp_path, capsys):
    s_dir, r_dir = str(tmp_path / "s"), str(tmp_path / "r")
    assert main(["search", *SMALL, *TINY_NET, f"data.root={rec_root}", f"output_dir={s_dir}"]) == 0
    arch = os.path.join(s_dir, "architecture.yaml")
    assert main(["retrain", "--arch", arch, *SMALL, *TINY_NET, f"data.root={rec_root}", f"output_dir={r_dir}",
                 "retrain.layout=config", "latency.after_retrain=true"]) == 0
    with open(os.path.join(r_dir, "result.json")) as f:
        result = json.load(f)
    assert {"test_acc", "test_top5_acc", "test_top5_error", "flops"} <= set(result)
    lrs = [json.loads(l)["lr"] for l in open(os.path.join(r_dir, "log.jsonl")) if '"retrain"' in l]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)  # linear decay reached lr_min = 0
    assert result["latency_ms"] > 0 and result["paper_row"] == "DSO-NAS-share"
    capsys.readouterr()
    assert main(["report", r_dir]) == 0
    text = capsys.readouterr().out
    assert "paper DSO-NAS-share (Table 2)" in text and "25.4 / 8.3" in text and "Table 5" in text


def test_search_killed_mid_epoch_resumes_to_the_same_result(rec_root, tmp_path):
    from test_pipeline import sigterm_resume_matches_straight

    sigterm_resume_matches_straight([*SMALL, *TINY_NET, f"data.root={rec_root}", "search.epochs=8",
                                     "search.ratio=[1, 1]"], tmp_path)


def test_pca_lighting_is_fb_resnets(tmp_path):
    """The iterator's ``pca_noise`` shifts the colour along fb.resnet's ImageNet eigenvectors with
    fb.resnet's eigenvalues (0.2175, 0.0188, 0.0045 in 0..1 units): measured on a flat grey image."""
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 128, 128)).save(buf, format="JPEG", quality=100)
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "g.idx"), str(tmp_path / "g.rec"), "w")
    w.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, 0, 0), buf.getvalue()))
    w.close()

    def image(seed, pca):
        it = _checked_iter(path_imgrec=str(tmp_path / "g.rec"), path_imgidx=str(tmp_path / "g.idx"),
                           data_shape=(3, 16, 16), batch_size=1, pca_noise=pca, seed_aug=seed, preprocess_threads=1)
        return it.next().data[0].asnumpy()[0].reshape(3, -1).mean(1)

    base = image(0, 0.0)
    shifts = np.array([image(s, 0.1) - base for s in range(200)])
    values, vectors = np.linalg.eigh(np.cov(shifts.T))
    assert np.sqrt(values[-1]) / 0.1 == pytest.approx(0.2175 * 255, rel=0.1)
    assert abs(vectors[:, -1] @ np.array([-0.5675, -0.5808, -0.5836])) > 0.99
    assert abs(vectors[:, -2] @ np.array([0.7192, -0.0045, -0.6948])) > 0.95
