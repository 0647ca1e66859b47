"""The segmentation writers (tools/segwrite.py) and tools/fashion_mnist_voc.py, read
back with GluonCV 0.10.5's own VOC, SBD and COCO segmentation readers."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
from PIL import Image
from scipy import ndimage

from segfiles import NON_VOC_CATEGORY, tiny_coco, tiny_sbd, tiny_voc
from segfiles import segwrite as sw

gdata = pytest.importorskip("gluoncv.data")
from pycocotools import mask as mask_utils  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "fashion_mnist_voc.py")
FMNIST = os.path.join(REPO, "tests", "golden", "fashion_mnist")
sys.path.insert(0, os.path.join(REPO, "tools"))


def close_image(got, want, mean_tol=3.0):
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert got.shape == want.shape and diff.mean() < mean_tol, diff.mean()


def test_voc_palette():
    pal = sw.VOC_PALETTE
    assert len(pal) == 768 and all(0 <= v < 256 for v in pal)
    colour = {c: tuple(pal[3 * c:3 * c + 3]) for c in (0, 1, 2, 3, 15, 20, 255)}
    assert colour == {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0),
                      15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}


def test_palette_png_round_trip(tmp_path):
    mask = np.random.default_rng(0).integers(0, 21, (17, 23)).astype(np.uint8)
    mask[3:5] = 255
    path = str(tmp_path / "m.png")
    sw.save_palette_png(path, mask)
    img = Image.open(path)
    assert img.mode == "P" and img.getpalette()[:768] == sw.VOC_PALETTE
    np.testing.assert_array_equal(np.array(img), mask)


def test_voc_reader(tmp_path):
    root = str(tmp_path)
    w = tiny_voc(root, n_train=3, n_val=2, size=[(40, 48), (33, 50)])
    val = gdata.VOCSegmentation(root, split="val", mode="testval")
    assert len(val) == 2
    for k, name in enumerate(w.splits["val"]):
        img, mask = val[k]
        image, want = w.items[name]
        close_image(img.asnumpy(), image)
        got = mask.asnumpy()
        # VOC's own _mask_transform builds the NDArray from int32 without a dtype: float32
        assert got.dtype == np.float32 and (got == -1).any()
        np.testing.assert_array_equal(got, np.where(want == 255, -1, want))
    # GluonCV's 'train' split is trainval.txt
    assert len(gdata.VOCSegmentation(root, split="train", mode="testval")) == 5


def test_sbd_reader(tmp_path):
    root = str(tmp_path)
    w = tiny_sbd(root, n=3, size=(40, 40))
    train = gdata.VOCAugSegmentation(root, split="train", mode="train", crop_size=32, base_size=40)
    assert len(train) == 3  # trainval.txt
    img, mask = train[0]
    assert img.shape == (32, 32, 3) and mask.shape == (32, 32)
    # crop_size = the image side: 'val' returns the image and mask unscaled
    val = gdata.VOCAugSegmentation(root, split="val", mode="val", crop_size=40)
    img, mask = val[0]
    image, want = w.items[w.splits["val"][0]]
    close_image(img.asnumpy(), image)
    np.testing.assert_array_equal(mask.asnumpy(), want)
    gt = scipy.io.loadmat(os.path.join(root, "VOCaug/dataset/cls", w.splits["val"][0] + ".mat"),
                          mat_dtype=True, squeeze_me=True, struct_as_record=False)["GTcls"]
    assert set(gt._fieldnames) == {"Boundaries", "Segmentation", "CategoriesPresent"}
    assert sorted(np.atleast_1d(gt.CategoriesPresent)) == sorted(set(np.unique(want)) - {0})
    assert len(gt.Boundaries) == 20


def test_sbd_void_becomes_background(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4], mask[5, 5] = 3, 255
    sw.write_sbd(str(tmp_path), {"a": (np.zeros((8, 8, 3), np.uint8), mask)}, {"trainval": ["a"]})
    gt = scipy.io.loadmat(str(tmp_path / "VOCaug/dataset/cls/a.mat"), squeeze_me=True,
                          struct_as_record=False)["GTcls"]
    np.testing.assert_array_equal(gt.Segmentation, np.where(mask == 255, 0, mask))


@pytest.mark.parametrize("form", ["polygon", "rle"])
def test_coco_reader(tmp_path, form):
    root = str(tmp_path)
    w = tiny_coco(root, n_train=3, n_val=2, form=form)
    for split, key in (("train", "train"), ("val", "val")):
        ds = gdata.COCOSegmentation(root, split=split, mode="testval")
        files = [ds.coco.loadImgs(i)[0]["file_name"] for i in ds.ids]
        assert files == [f for f, _, _ in w.kept[key]]  # the too-small image is dropped
        assert not set(files) & set(w.dropped[key])
        for k, (_, image, want) in enumerate(w.kept[key]):
            img, mask = ds[k]
            close_image(img.asnumpy(), image)
            np.testing.assert_array_equal(mask.asnumpy(), want)
    ann = os.path.join(root, "annotations")
    with open(os.path.join(ann, "instances_val2017.json")) as f:
        data = json.load(f)
    assert {"id", "file_name", "height", "width"} <= set(data["images"][0])
    for a in data["annotations"]:
        assert a["iscrowd"] == (form == "rle") and a["area"] == a["bbox"][2] * a["bbox"][3]
    cats = {c["id"]: c["name"] for c in data["categories"]}
    assert cats[NON_VOC_CATEGORY] == "category_90" and cats[sw.coco_category_for_voc_class(1)] == "airplane"
    assert os.path.exists(os.path.join(ann, "train_ids.mx"))
    sw.write_coco(root, "train2017", [("x.jpg", np.zeros((4, 4, 3), np.uint8))], [])
    assert not os.path.exists(os.path.join(ann, "train_ids.mx"))  # a stale cache is removed


def test_compressed_rle_reads_in_pycocotools_not_in_gluoncv(tmp_path):
    from pycocotools.coco import COCO
    m = np.zeros((64, 64), bool)
    m[5:50, 3:60] = True
    path = sw.write_coco(str(tmp_path), "train2017", [("a.jpg", np.zeros((64, 64, 3), np.uint8))],
                         [{"image": 0, "category_id": 1, "mask": m, "form": "rle_compressed"}])
    coco = COCO(path)
    np.testing.assert_array_equal(coco.annToMask(coco.loadAnns(coco.getAnnIds())[0]), m)
    with pytest.raises(ValueError):  # frPyObjects wants list counts
        gdata.COCOSegmentation(str(tmp_path), split="train", mode="testval")


def test_polygons_reproduce_masks_holes_filled():
    rng = np.random.default_rng(1)
    for it in range(40):
        h, w = (int(v) for v in rng.integers(6, 50, 2))
        m = ndimage.gaussian_filter(rng.random((h, w)), 1.5) > 0.5 if it % 2 else rng.random((h, w)) < 0.5
        filled = np.zeros_like(m)
        lab, n = ndimage.label(m)
        for i in range(1, n + 1):
            filled |= ndimage.binary_fill_holes(lab == i, structure=np.ones((3, 3)))
        polys = sw.mask_to_polygons(m)
        got = mask_utils.decode(mask_utils.frPyObjects(polys, h, w)).sum(2) > 0 if polys else np.zeros_like(filled)
        np.testing.assert_array_equal(got, filled)
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8], ring[3:6, 3:6] = True, False
    assert len(sw.mask_to_polygons(ring)) == 1
    assert len(sw.mask_to_polygons(np.eye(3, dtype=bool))) == 3  # diagonal contacts split


def test_uncompressed_rle():
    rng = np.random.default_rng(2)
    for m in (rng.random((7, 9)) < 0.4, np.ones((3, 4), bool), np.zeros((3, 4), bool)):
        rle = sw.uncompressed_rle(m)
        np.testing.assert_array_equal(mask_utils.decode(mask_utils.frPyObjects(rle, *m.shape)), m)


def test_paste_instances():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:28, 0:28]
    disc = np.clip(255 - 12 * np.hypot(yy - 13.5, xx - 13.5), 0, 255).astype(np.uint8)
    items = [(disc, 3), (rng.integers(0, 256, (28, 28)).astype(np.uint8), 7), (disc, 5)]
    image, mask, placed = sw.paste_instances(items, 80, np.random.default_rng(4), scale=(1.0, 2.0))
    image2, mask2, _ = sw.paste_instances(items, 80, np.random.default_rng(4), scale=(1.0, 2.0))
    np.testing.assert_array_equal(image, image2)  # a pure function of the generator's state
    np.testing.assert_array_equal(mask, mask2)
    assert image.shape == (80, 80, 3) and image.dtype == np.uint8 and mask.dtype == np.uint8
    sils = []
    for (_, label), p in zip(items, placed):
        s = p.silhouette.shape[0]
        assert p.label == label and 28 <= s <= 56
        full = np.zeros((80, 80), bool)
        full[p.top:p.top + s, p.left:p.left + s] = p.silhouette
        sils.append(full)
    for k, p in enumerate(placed):  # visible = own silhouette minus later ones
        later = np.any(sils[k + 1:], axis=0) if k + 1 < len(sils) else np.zeros((80, 80), bool)
        np.testing.assert_array_equal(p.visible, sils[k] & ~later)
        assert (mask[p.visible] == p.label).all()
    objects = np.any(sils, axis=0)
    np.testing.assert_array_equal((mask > 0) & (mask < 255), objects)
    near = ndimage.binary_dilation(objects, np.ones((5, 5), bool))  # border 2, square
    np.testing.assert_array_equal(mask == 255, near & ~objects)
    assert image[~near].std() > 0.5  # a noisy background, not flat
    assert np.ptp(image[objects].astype(int), axis=1).max() > 20  # tinted: colour, not grey
    # unscaled, the silhouette is the picture > threshold
    _, _, placed = sw.paste_instances([(disc, 1)], 40, rng, scale=(1.0, 1.0), threshold=100)
    np.testing.assert_array_equal(placed[0].silhouette, disc > 100)


def run_tool(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, TOOL, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_tool_voc_and_coco_agree(tmp_path):
    voc, coco = str(tmp_path / "voc"), str(tmp_path / "coco")
    common = ["--train", "6", "--val", "3", "--side", "64", "--seed", "5", "--fmnist", FMNIST]
    for out, fmt in ((voc, "voc"), (coco, "coco")):
        r = run_tool(out, "--format", fmt, *common)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.strip().splitlines()) == 1 and "side 64" in r.stdout
    assert len(gdata.VOCSegmentation(voc, split="train", mode="testval")) == 9
    val = gdata.VOCSegmentation(voc, split="val", mode="testval")
    vmasks = [val[k][1].asnumpy() for k in range(len(val))]
    assert len(vmasks) == 3 and set(np.unique(vmasks)) <= set(range(-1, 11))
    aug = gdata.VOCAugSegmentation(voc, split="train", mode="train", crop_size=32, base_size=64)
    assert len(aug) == 6 and aug[0][1].shape == (32, 32)
    ds = gdata.COCOSegmentation(coco, split="val", mode="testval")
    assert 0 < len(ds) <= 3
    for k, img_id in enumerate(ds.ids):  # same seed, same canvases: COCO mask = VOC mask
        img, mask = ds[k]
        j = img_id - 7  # val ids follow the 6 training ids
        vimg, vmask = val[j]
        np.testing.assert_array_equal(img.asnumpy(), vimg.asnumpy())
        agree = (mask.asnumpy() == np.maximum(vmask.asnumpy(), 0)).mean()
        assert agree > 0.97, agree  # polygons fill holes; RLE is exact


def test_tool_is_deterministic(tmp_path):
    import fashion_mnist_voc as tool
    for out in ("a", "b"):
        tool.write_dataset(str(tmp_path / out), "voc", train=3, val=1, seed=2, fmnist=FMNIST)
    for rel in ("VOC2012/SegmentationClass/fmnist_train_000002.png", "VOCaug/dataset/img/fmnist_train_000001.jpg"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_tool_bad_input(tmp_path, capsys):
    r = run_tool(str(tmp_path / "out"), "--fmnist", str(tmp_path / "missing"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr
    import fashion_mnist_voc as tool
    assert tool.main([str(tmp_path / "out"), "--train", "0", "--fmnist", FMNIST]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--train" in err
