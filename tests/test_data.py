"""Tests of dso_nas.data: file readers, split, augmentation and resumable loaders."""
import os

import numpy as np
import pytest

from datafiles import idx_bytes, write_cifar_bin, write_cifar_py, write_idx
from dso_nas.data import (Augment, ArrayLoader, build_loaders, check_dataset, load_dataset,
                          split_indices, train_augment)
from dso_nas.data.fashion_mnist import DEFAULT_ROOT
from dso_nas.errors import ConfigError, DatasetNotFoundError, UserError
from dso_nas.config import load_config
from dso_nas.run.loaders import load_data


def assert_same(ds, expected):
    for key in ("train_x", "train_y", "test_x", "test_y"):
        got, want = getattr(ds, key), getattr(expected, key)
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want)


def one_line_error(exc_type, fn, *args, match=()):
    with pytest.raises(exc_type) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg
    for word in match:
        assert word in msg, msg
    return msg


# ----------------------------------------------------------------------------- readers

@pytest.mark.parametrize("writer,folder", [(write_cifar_py, "cifar-10-batches-py"),
                                           (write_cifar_bin, "cifar-10-batches-bin")])
@pytest.mark.parametrize("use_parent", [True, False])
def test_cifar_roundtrip(tmp_path, writer, folder, use_parent):
    expected = writer(str(tmp_path / folder), n_train_per_batch=4, n_test=3, seed=1)
    ds = load_dataset("cifar10", str(tmp_path if use_parent else tmp_path / folder))
    assert_same(ds, expected)
    assert ds.train_x.shape == (20, 32, 32, 3) and ds.num_classes == 10
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2470, 0.2435, 0.2616)


def test_cifar_planar_layout(tmp_path):
    """Decode pixels straight from the record bytes: R plane, G plane, B plane, row-major."""
    write_cifar_bin(str(tmp_path / "cifar-10-batches-bin"), 2, 2, seed=3)
    raw = np.fromfile(tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin", np.uint8)
    ds = load_dataset("cifar10", str(tmp_path))
    for c, r, col in [(0, 0, 1), (1, 5, 30), (2, 31, 0), (2, 7, 19)]:
        assert ds.train_x[0, r, col, c] == raw[1 + c * 1024 + r * 32 + col]
    assert ds.train_y[1] == raw[3073]
    img = ds.train_x[0]
    assert not np.array_equal(img, img.transpose(1, 0, 2))  # non-symmetric, so layout matters


def test_cifar_py_and_bin_agree(tmp_path):
    a = write_cifar_py(str(tmp_path / "a" / "cifar-10-batches-py"), 3, 2, seed=5)
    b = write_cifar_bin(str(tmp_path / "b" / "cifar-10-batches-bin"), 3, 2, seed=5)
    assert_same(load_dataset("cifar10", str(tmp_path / "a")), b)
    assert_same(load_dataset("cifar10", str(tmp_path / "b")), a)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, gz):
    expected = write_idx(str(tmp_path), n_train=7, n_test=5, seed=2, gz=gz)
    ds = load_dataset("fashion_mnist", str(tmp_path))
    assert_same(ds, expected)
    assert ds.train_x.shape == (7, 28, 28, 1) and ds.test_y.dtype == np.int32
    assert ds.mean == (0.2860,) and ds.std == (0.3530,)


@pytest.mark.parametrize("reader", ["load_dataset", "check_dataset"])
def test_missing_paths(tmp_path, reader):
    """Both the loader and the read-nothing check (run before a run folder is made)."""
    reader = {"load_dataset": load_dataset, "check_dataset": check_dataset}[reader]
    one_line_error(DatasetNotFoundError, reader, "fashion_mnist", str(tmp_path / "nope"),
                   match=(str(tmp_path / "nope"), "apt-get install dataset-fashion-mnist",
                          "data.root="))
    write_idx(str(tmp_path / "f"), 2, 2)
    os.remove(tmp_path / "f" / "t10k-labels-idx1-ubyte.gz")
    one_line_error(DatasetNotFoundError, reader, "fashion_mnist", str(tmp_path / "f"),
                   match=("t10k-labels-idx1-ubyte", "data.root="))
    one_line_error(DatasetNotFoundError, reader, "cifar10", str(tmp_path),
                   match=(str(tmp_path), "data.root="))
    one_line_error(DatasetNotFoundError, reader, "cifar10", "", match=("data.root=",))
    write_cifar_bin(str(tmp_path / "c"), 1, 1)
    os.remove(tmp_path / "c" / "test_batch.bin")
    one_line_error(DatasetNotFoundError, reader, "cifar10", str(tmp_path / "c"),
                   match=("test_batch.bin",))
    one_line_error(UserError, reader, "mnist", "", match=("cifar10", "fashion_mnist"))


def test_corrupt_files(tmp_path):
    write_idx(str(tmp_path), 3, 3, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    good = path.read_bytes()
    for bad in (b"\x00\x00\x0d\x03" + good[4:], good[:-1], good[:6]):
        path.write_bytes(bad)
        one_line_error(UserError, load_dataset, "fashion_mnist", str(tmp_path), match=(str(path),))
    path.write_bytes(good)
    lab = tmp_path / "t10k-labels-idx1-ubyte"
    lab.write_bytes(idx_bytes(np.zeros(2, np.uint8)))  # 2 labels for 3 images
    one_line_error(UserError, load_dataset, "fashion_mnist", str(tmp_path), match=(str(lab),))
    gz = tmp_path / "g"
    write_idx(str(gz), 3, 3, gz=True)
    (gz / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    one_line_error(UserError, load_dataset, "fashion_mnist", str(gz), match=("train-labels",))

    write_cifar_py(str(tmp_path / "cifar-10-batches-py"), 1, 1)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"\x80\x02cos\nsystem\n.")  # a pickle that would call os.system
    one_line_error(UserError, load_dataset, "cifar10", str(tmp_path), match=(str(bad),))
    write_cifar_bin(str(tmp_path / "b" / "cifar-10-batches-bin"), 1, 1)
    rec = tmp_path / "b" / "cifar-10-batches-bin" / "data_batch_2.bin"
    rec.write_bytes(rec.read_bytes()[:-5])
    one_line_error(UserError, load_dataset, "cifar10", str(tmp_path / "b"), match=(str(rec),))


@pytest.mark.skipif(not os.path.isdir(DEFAULT_ROOT), reason="dataset-fashion-mnist not installed")
def test_debian_fashion_mnist():
    ds = load_dataset("fashion_mnist", "")
    assert ds.train_x.shape == (60000, 28, 28, 1) and ds.test_x.shape == (10000, 28, 28, 1)
    assert ds.train_y.shape == (60000,) and ds.test_y.shape == (10000,)
    assert np.bincount(ds.train_y).tolist() == [6000] * 10
    assert abs(ds.train_x.mean() / 255 - 0.2860) < 1e-3
    assert abs(ds.train_x.std() / 255 - 0.3530) < 1e-3


# ----------------------------------------------------------------------------- split

def test_split_indices():
    w, lam = split_indices(50000, 0.5, seed=7)
    assert len(w) == len(lam) == 25000
    assert np.array_equal(np.sort(np.concatenate([w, lam])), np.arange(50000))
    w2, lam2 = split_indices(50000, 0.5, seed=7)
    assert np.array_equal(w, w2) and np.array_equal(lam, lam2)
    assert not np.array_equal(w, split_indices(50000, 0.5, seed=8)[0])
    w, lam = split_indices(101, 0.8, seed=0)
    assert (len(w), len(lam)) == (81, 20) and not set(w) & set(lam)
    with pytest.raises(ConfigError):
        split_indices(10, 1.0, 0)


# ----------------------------------------------------------------------------- augment

@pytest.fixture
def batch():
    return np.random.default_rng(0).integers(1, 256, (16, 8, 10, 3), dtype=np.uint8)


def test_augment_shape_and_determinism(batch):
    aug = Augment(pad=2, flip=True, cutout=3)
    a = aug(batch, np.random.default_rng(5))
    assert a.shape == batch.shape and a.dtype == np.uint8
    assert np.array_equal(a, aug(batch, np.random.default_rng(5)))
    assert not np.array_equal(a, aug(batch, np.random.default_rng(6)))
    m = aug.cutout_mask(16, 8, 10, np.random.default_rng(5))
    assert m.shape == (16, 1, 8, 10) and m.dtype == np.float32
    assert np.array_equal(Augment(pad=0, flip=False)(batch, np.random.default_rng(0)), batch)


def test_flip_really_flips(batch):
    out = Augment(pad=0, flip=True)(batch, np.random.default_rng(1))
    same = [np.array_equal(o, b) for o, b in zip(out, batch)]
    flipped = [np.array_equal(o, b[:, ::-1]) for o, b in zip(out, batch)]
    assert all(s != f for s, f in zip(same, flipped)) and 0 < sum(flipped) < len(batch)


def test_crop_within_padded_image(batch):
    p = 3
    out = Augment(pad=p, flip=False)(batch, np.random.default_rng(2))
    padded = np.pad(batch, ((0, 0), (p, p), (p, p), (0, 0)))
    shifts = set()
    for o, pb in zip(out, padded):
        hits = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                if np.array_equal(o, pb[dy:dy + 8, dx:dx + 10])]
        assert hits, "crop is not a window of the padded image"
        shifts.add(hits[0])
    assert len(shifts) > 3


def test_cutout_zeroes_a_clipped_square():
    s, h, w = 4, 12, 12
    masks = Augment(pad=0, flip=False, cutout=s).cutout_mask(200, h, w, np.random.default_rng(3))
    areas = set()
    for m in masks[:, 0]:
        ys, xs = np.nonzero(m == 0)
        assert ys.size and ys.max() - ys.min() < s and xs.max() - xs.min() < s
        box = m[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        assert (box == 0).all() and ((m == 0) | (m == 1)).all()  # one solid rectangle
        areas.add(ys.size)
    assert s * s in areas and min(areas) < s * s  # full squares and border-clipped ones
    assert Augment(cutout=0).cutout_mask(2, h, w, np.random.default_rng(0)) is None


def test_train_augment():
    assert train_augment("cifar10", 16) == Augment(pad=4, flip=True, cutout=16)
    assert train_augment("fashion_mnist") == Augment(pad=4, flip=True, cutout=0)
    with pytest.raises(UserError, match="not an in-memory dataset"):
        train_augment("imagenet")
    with pytest.raises(UserError):
        train_augment("coco")


# ----------------------------------------------------------------------------- loader

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def make_loader(x, y, **kw):
    args = dict(shuffle=True, augment=Augment(pad=2, flip=True, cutout=3), mean=MEAN, std=STD,
                seed=11)
    args.update(kw)
    return ArrayLoader(x, y, 5, **args)


def as_numpy(batches):
    return [(d.asnumpy(), l.asnumpy()) for d, l in batches]


def test_loader_resumes_bit_identically(batch):
    y = np.arange(16)
    loader = make_loader(batch, y)
    assert len(loader) == 4 and len(make_loader(batch, y, drop_last=True)) == 3
    full = as_numpy(loader.epoch(2))
    assert [len(l) for _, l in full] == [5, 5, 5, 1]
    assert sorted(np.concatenate([l for _, l in full]).tolist()) == list(range(16))
    for start in (1, 3, 4):
        resumed = as_numpy(make_loader(batch, y).epoch(2, start=start))
        assert len(resumed) == 4 - start
        for (d1, l1), (d2, l2) in zip(resumed, full[start:]):
            assert np.array_equal(d1, d2) and np.array_equal(l1, l2)
    other = as_numpy(loader.epoch(3))
    assert not np.array_equal(np.concatenate([l for _, l in other]),
                              np.concatenate([l for _, l in full]))


def test_loader_normalises(batch):
    loader = make_loader(batch, np.arange(16), shuffle=False, augment=None)
    data, label = next(loader.epoch(0))
    want = (batch[:5].transpose(0, 3, 1, 2) / 255.0 - np.array(MEAN)[:, None, None]) \
        / np.array(STD)[:, None, None]
    assert data.shape == (5, 3, 8, 10) and data.dtype == np.float32
    np.testing.assert_allclose(data.asnumpy(), want, rtol=1e-5, atol=1e-5)
    assert label.dtype == np.float32 and label.asnumpy().tolist() == [0, 1, 2, 3, 4]


def test_loader_cutout_after_normalisation(batch):
    """Cutout pixels are exactly 0 in the normalised batch (not -mean/std)."""
    aug = Augment(pad=0, flip=False, cutout=4)
    data, _ = next(make_loader(batch, np.arange(16), shuffle=False, augment=aug).epoch(0))
    rng = np.random.default_rng([11, 0, 0, 1])
    aug(batch[:5], rng)
    mask = aug.cutout_mask(5, 8, 10, rng)
    d = data.asnumpy()
    assert (d[np.broadcast_to(mask == 0, d.shape)] == 0).all()
    assert (d[np.broadcast_to(mask == 1, d.shape)] != 0).all()


def test_build_loaders(tmp_path):
    write_cifar_bin(str(tmp_path), 8, 6, seed=4)
    ds = load_dataset("cifar10", str(tmp_path))
    kw = dict(batch_size=4, eval_batch_size=5, weight_fraction=0.5, seed=3)
    ld = build_loaders(ds, limit=30, split=True, **kw)
    assert (ld.weights.num_samples, ld.lambdas.num_samples, ld.full.num_samples) == (15, 15, 30)
    assert ld.test.num_samples == 6 and len(ld.test) == 2 and ld.test.augment is None
    w = {x.tobytes() for x in ld.weights.x}
    assert not w & {x.tobytes() for x in ld.lambdas.x}
    assert w | {x.tobytes() for x in ld.lambdas.x} == {x.tobytes() for x in ds.train_x[:30]}
    joint = build_loaders(ds, limit=0, split=False, cutout=16, test_limit=4, **kw)
    assert joint.weights.num_samples == joint.lambdas.num_samples == 40
    assert joint.weights.augment.cutout == 16 and joint.test.num_samples == 4
    lw = np.concatenate([l.asnumpy() for _, l in joint.weights.epoch(0)])
    ll = np.concatenate([l.asnumpy() for _, l in joint.lambdas.epoch(0)])
    assert sorted(lw) == sorted(ll) and not np.array_equal(lw, ll)  # same set, other order
    assert build_loaders(ds, limit=0, split=True, augment=False, **kw).weights.augment is None


def test_validation_holdout_replaces_the_test_set(tmp_path):
    write_cifar_bin(str(tmp_path), 8, 6, seed=4)
    ds = load_dataset("cifar10", str(tmp_path))
    kw = dict(batch_size=4, eval_batch_size=5, weight_fraction=0.5, seed=3, split=True)
    ld = build_loaders(ds, limit=0, validation=10, **kw)
    assert ld.eval_split == "val" and ld.test.num_samples == 10 and ld.full.num_samples == 30
    held = {x.tobytes() for x in ds.train_x[30:]}
    assert {x.tobytes() for x in ld.test.x} == held                 # the last 10 training images
    assert not held & {x.tobytes() for x in ld.full.x}              # never trained on
    assert not held & ({x.tobytes() for x in ld.weights.x} | {x.tobytes() for x in ld.lambdas.x})
    assert not {x.tobytes() for x in ld.test.x} & {x.tobytes() for x in ds.test_x}
    assert build_loaders(ds, limit=0, **kw).eval_split == "test"
    with pytest.raises(ConfigError, match="data.validation"):
        build_loaders(ds, limit=0, validation=39, **kw)


def test_search_limit_applies_to_search_only(tmp_path):
    write_cifar_bin(str(tmp_path), 8, 6, seed=4)
    cfg = load_config(None, [f"data.root={tmp_path}", "data.search_limit=12", "data.limit=30"])
    search, _ = load_data(cfg, retrain=False)
    retrain, _ = load_data(cfg, retrain=True)
    assert search.weights.num_samples + search.lambdas.num_samples == 12
    assert retrain.full.num_samples == 30
