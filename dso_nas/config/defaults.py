"""Every configuration default, with one comment per key (pycls style).

The defaults are the paper's CIFAR-10 setting (TPAMI §4.1-4.2), with the authors' public
release filling what the paper leaves open (see ``docs/fidelity.md``). Keys whose values
name a registered part (``model.space``, ``task.name``, ``data.name``, ``model.ops``) take
their choices from that registry, the other keys with a set of values from the module that
implements them (:data:`CHOICES`); no set is listed here.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, Tuple

from .node import CfgNode

_C = CfgNode()

_C.seed = 0  # seed of weights init, data split and data order; a run is reproducible from it on CPU
_C.output_dir = "runs/cifar"  # run folder: log, config, checkpoints, architecture, plots
_C.progress = True  # tqdm progress bars on long loops (always off when stderr is not a TTY)
_C.context = "cpu"  # devices: "cpu", "gpu" (= gpu:0), "gpu:0,1" for several GPUs, "cpu:0,1" (tests)

_C.task = CfgNode()
_C.task.name = "classification"  # task (dso_nas.tasks.TASKS): "classification" or "segmentation" (DeepLabv3 head, mIoU)
_C.task.aspp_rates = [6, 12, 18]  # segmentation: atrous rates of the ASPP's three 3x3 branches (DeepLabv3 at output stride 16)

_C.model = CfgNode()
_C.model.space = "dense"  # search space (dso_nas.spaces.SPACES): "dense" = M levels x N ops (§3.1); alias "normal"
_C.model.stem = "cifar"  # stem: "cifar" (3x3 conv), "imagenet" (two stride-2 3x3 convs), "stride2" (one stride-2 3x3 conv)
_C.model.in_channels = 3  # input image channels (1 for Fashion-MNIST)
_C.model.stem_channels = 48  # stem output width (release: 48 CIFAR, 28 ImageNet)
_C.model.stages = 3  # S: number of stages (a reduction block follows every stage but the last)
_C.model.blocks = [8, 8, 8]  # B: normal search blocks in each stage (paper CIFAR: 8 per stage)
_C.model.channels = [48, 96, 192]  # width of each stage at search time (release CIFAR 48/96/192)
_C.model.levels = 4  # M: levels per block (paper: 4)
_C.model.ops = ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"]  # the N ops of a level
_C.model.scope = "full"  # "share": one λ set for all normal blocks; "full": one per block
_C.model.aggregation = "fused"  # λ sums: "fused" (one product per level), "per_edge" (reference), "ops_floor" (bench)
_C.model.num_classes = 10  # classifier outputs
_C.model.bn_eps = 2e-5  # BatchNorm epsilon (release value)
_C.model.bn_momentum = 0.9  # BatchNorm running-statistics momentum (release value)
_C.model.mobile = CfgNode()  # the mobile (ProxylessNAS) space's macro (model.space=mobile; §3.1)
_C.model.mobile.first_conv = 32  # width of the first 3x3 stride-2 conv (ProxylessNAS mobile: 32; GPU/CPU nets: 40)
_C.model.mobile.first_block = 16  # width of the fixed mbconv_3x3_e1 block after it (GPU/CPU nets: 24)
_C.model.mobile.widths = [24, 40, 80, 96, 192, 320]  # width of each searchable stage
_C.model.mobile.depths = [4, 4, 4, 4, 4, 1]  # searchable blocks per stage
_C.model.mobile.strides = [2, 2, 2, 1, 2, 1]  # stride of each stage's first block
_C.model.mobile.last_conv = 1280  # width of the 1x1 conv before the pooling and the classifier
_C.model.mobile.one_op = True  # stop the search once every block keeps at most one op (§4.3); search.epochs caps it
_C.model.darts = CfgNode()  # the DARTS cell space (model.space=darts; DARTS, Liu et al. 2019; NASP)
_C.model.darts.channels = 16  # C of the search network's first cells (DARTS: 16)
_C.model.darts.layers = 8  # cells of the search network (DARTS: 8; reductions at 1/3 and 2/3 of the depth)
_C.model.darts.steps = 4  # intermediate nodes per cell (DARTS: 4, so 14 edges)
_C.model.darts.stem_multiplier = 3  # the stem's width is stem_multiplier x C (DARTS: 3)
_C.model.darts.stem_stride = 1  # stride of the stem's 3x3 conv (DARTS CIFAR: 1; 2 quarters the cost of small-image micro runs)
_C.model.darts.normal_ops = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]  # candidate ops of the normal cell (DARTS' eight)
_C.model.darts.reduce_ops = []  # candidate ops of the reduction cell ([] = normal_ops; NASP's 12-op space differs)
_C.model.darts.derive = "nonzero"  # "nonzero": DSO-NAS keeps every non-zero λ; "darts": per node the 2 strongest edges, per edge its strongest op
_C.model.darts.eval_channels = 36  # C of the evaluation (retraining) network (DARTS CIFAR-10: 36), times retrain.width_mult
_C.model.darts.eval_layers = 20  # cells of the evaluation network (DARTS CIFAR-10: 20)
_C.model.output_stride = 0  # stride of the last map: 0 = every reduction strided; 16 = DeepLabv3's atrous backbone (§4.4)
_C.model.first_shortcut = "identity"  # shortcut of each stage's first derived block: "identity" (paper) or "conv" (release)
_C.model.final_bn = True  # dense space: BN + ReLU on the last stage's output before the head (release: final_bn, final_relu)

_C.data = CfgNode()
_C.data.name = "cifar10"  # dataset (dso_nas.data.DATASETS): fashion_mnist, cifar10, imagenet, voc, voc_aug, coco
_C.data.root = ""  # dataset folder; "" = the dataset's default location (Fashion-MNIST: Debian's)
_C.data.limit = 0  # use only the first K training images (0 = all)
_C.data.search_limit = 0  # pre-training and search use only the first K training images (0 = data.limit)
_C.data.validation = 0  # hold out the last K training images and evaluate on them, not the test set (tuning)
_C.data.weight_fraction = 0.5  # share of the training set in D_w; the rest is D_λ (CIFAR 25k/25k)
_C.data.cutout = 16  # cutout square side for retraining (0 = off); never used in search
_C.data.augment = True  # pad-4 random crop + horizontal flip on training batches
_C.data.test_limit = 0  # evaluate on only the first K test images (0 = all; for smoke runs)
_C.data.image_size = 224  # RecordIO: training crop and evaluation centre crop side; segmentation: crop and evaluation pad side
_C.data.base_size = 520  # segmentation: long side GluonCV's random scale (0.5-2x) starts from before the crop (GluonCV: 520)
_C.data.extra = []  # segmentation: more training sets added to data.name's, each "name:root" (§4.4 stage 1: COCO + SBD + VOC)
_C.data.resize = 256  # RecordIO: evaluation resizes the short side to this before the centre crop
_C.data.min_area = 0.08  # RecordIO: smallest area fraction of the random-resized crop (fb.resnet: 0.08)
_C.data.jitter = 0.4  # RecordIO: brightness, contrast and saturation jitter (fb.resnet: 0.4)
_C.data.lighting = 0.1  # RecordIO: PCA lighting noise std (fb.resnet: 0.1)
_C.data.threads = 0  # RecordIO: decoding threads asked of the iterator (0 = all cores; the 1.9.1 CPU wheel uses one)
_C.data.cache = ""  # RecordIO: folder of the D_w / D_λ and subset record files ("" = <data.root>/dso_nas_cache)

_C.train = CfgNode()
_C.train.batch_size = 128  # mini-batch size of pre-training and search (paper: 128)
_C.train.eval_batch_size = 256  # batch size for evaluation
_C.train.fix_gamma = True  # BN γ fixed to 1 while pre-training and searching (§4.1)
_C.train.clip_gradient = 2.0  # element-wise gradient clipping for weights and λ (release: 2.0); 0 = off
_C.train.mirror = False  # mirror (sublinear-memory) training of the supernet
_C.train.init = ""  # checkpoint (search.ckpt / retrain.ckpt) whose same-named, same-shaped weights start the net (ImageNet backbone)
_C.train.kvstore = "local"  # gradient sums: "local"/"device" (one process), "dist_sync"/"dist_device_sync" (workers of dso-nas launch)

_C.pretrain = CfgNode()
_C.pretrain.epochs = 120  # epochs of training the complete supernet on D_w (paper: 120)
_C.pretrain.lr = 0.1  # constant learning rate (paper: 0.1)
_C.pretrain.momentum = 0.9  # NAG momentum (release: 0.9)
_C.pretrain.wd = 3e-4  # weight decay (paper: 3e-4)

_C.search = CfgNode()
_C.search.method = "dso"  # the search method: "dso" (DSO-NAS: ℓ1 on λ by APG-NAG), "nasp" (NASP, proximal iterations), "darts" (first-order DARTS); nasp and darts search the darts space
_C.search.epochs = 120  # maximum search epochs (paper: about 120 until convergence)
_C.search.until = "converged"  # "converged": stop once the λ support is unchanged for search.patience epochs; "epochs": run them all (paper: until convergence)
_C.search.patience = 10  # epochs in a row without a support change that end a search.until=converged search
_C.search.split = True  # λ on D_λ and weights on D_w; false = joint training on one set (Table 7)
_C.search.ratio = [1, 1]  # x:y weight steps to λ steps (paper: 1:1 CIFAR, 4:1 ImageNet)
_C.search.lr = 0.1  # weights' learning rate during search (paper: 0.1, constant; NASP and DARTS: 0.025, cosine)
_C.search.lr_schedule = "constant"  # weights' rate over the search epochs: "constant" or "cosine" (to search.lr_min, NASP's and DARTS')
_C.search.lr_min = 0.001  # the cosine schedule's last rate (NASP, DARTS: 0.001)
_C.search.clip_norm = 0.0  # clip the weights' gradient to this global L2 norm before each weight step (0 = off; NASP, DARTS: 5)
_C.search.momentum = 0.9  # weights' momentum (release: 0.9; NAG for dso, heavy-ball SGD for nasp and darts)
_C.search.wd = 3e-4  # weights' weight decay (paper: 3e-4; release 1e-4)
_C.search.lambda_lr = 0.1  # λ learning rate η of APG-NAG (release: 0.1)
_C.search.lambda_momentum = 0.9  # λ momentum μ of APG-NAG (release: 0.9)
_C.search.clamp = True  # keep λ′ >= 0 after each APG-NAG step, so a zeroed edge adds nothing (release)
_C.search.prune_every = 5  # every this many search epochs fix zeroed λ and dead ops' λ at zero for good (0 = never; release CIFAR 5, ImageNet 1)
_C.search.gamma = 0.001  # sparsity weight γ of ||λ||_1 (release CIFAR: 0.001, ImageNet 0.01)
_C.search.budget = "flops"  # γ adaptation: "none", "flops" (Eq. 17), "mac" (Eq. 18), "latency" (Eq. 19)
_C.search.budget_every = 1  # refresh the FLOPs/MAC γ multipliers every this many λ steps
_C.search.gamma0 = 0.0  # γ_0, the base weight of adaptive latency (Eq. 19)
_C.search.latency_every = 1  # re-measure connection latencies every this many epochs (Eq. 19)
_C.search.arch = CfgNode()  # the architecture parameters α of nasp and darts (Adam, as both papers' code)
_C.search.arch.lr = 3e-4  # Adam's learning rate (NASP, DARTS: 3e-4)
_C.search.arch.beta1 = 0.5  # Adam's β1 (NASP, DARTS: 0.5)
_C.search.arch.beta2 = 0.999  # Adam's β2 (NASP, DARTS: 0.999)
_C.search.arch.wd = 1e-3  # Adam's weight decay on α (NASP, DARTS: 1e-3)
_C.search.nasp = CfgNode()
_C.search.nasp.eta = 0.0  # η of NASP's parameter-size regulariser R(A) = Σ_i (p_i / p̄)·||ā_i||² (main results: 0)

_C.latency = CfgNode()
_C.latency.runs = 5  # timed runs averaged per measurement (paper: 5)
_C.latency.warmup = 2  # untimed runs before timing
_C.latency.input_size = 224  # input side of the latency probe (paper: 224, batch 1)
_C.latency.model = "table"  # "table": per-piece lookup table, summed (instant); "wall_clock": time each derived net
_C.latency.table = "runs/latency"  # folder of the per-device lookup tables, reused across runs
_C.latency.after_retrain = False  # time the retrained net (batch 1, latency.input_size) into result.json (Table 5)

_C.retrain = CfgNode()
_C.retrain.epochs = 630  # retraining epochs (paper: 630 = SGDR 10+20+40+80+160+320)
_C.retrain.schedule = "sgdr"  # learning rate: "sgdr" (CIFAR), "linear" (ImageNet: lr_max -> lr_min), "poly" (DeepLabv3: power 0.9)
_C.retrain.label_smoothing = 0.0  # label smoothing ε of the retraining loss (paper ImageNet: used; 0.1)
_C.retrain.layout = "arch"  # network layout: "arch" (the file's) or "config" (its cells on model.*: transfer, Table 2 †)
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
_C.retrain.aux_stage = 0  # 1-based stage the aux head reads after; 0 = the release's (2 CIFAR, 3 ImageNet)
_C.retrain.target_params = 3.0e6  # width multiplier chosen to meet this parameter count (0 = off)
_C.retrain.target_flops = 0.0  # or this FLOPs (multiply-adds) budget (ImageNet: 600e6; 0 = off)
_C.retrain.width_mult = 1.0  # width multiplier used when no target is set
_C.retrain.width_divisor = 8  # scaled widths are multiples of this (oneDNN/tensor-core friendly); 1 = nearest integer
_C.retrain.eval_every = 0  # also evaluate on the test set every this many epochs (0 = only at the end)


def _spaces():
    from ..spaces import SPACES  # noqa: PLC0415 - defers the slow MXNet import (registries); only when validating
    return SPACES


def _tasks():
    from ..tasks import TASKS  # noqa: PLC0415 - defers the slow MXNet import
    return TASKS


def _datasets():
    from ..data import DATASETS  # noqa: PLC0415 - defers the slow MXNet import
    return DATASETS


def _methods():
    from ..search.methods import METHODS  # noqa: PLC0415 - defers the slow MXNet import
    return METHODS


def _ops():
    from ..ops import OPS  # noqa: PLC0415 - defers the slow MXNet import
    return OPS


def _darts_ops() -> Tuple:
    """The DARTS space's op names: the op table's ``darts`` family, without its prefix."""
    ops = _ops()
    return tuple(n[len("darts_"):] for n in ops.names() if ops.get(n).family == "darts")


def _owned(module: str, name: str) -> Callable[[], Tuple]:
    """The choices a module owns (``dso_nas.<module>.<name>``), imported when asked (most owners
    import MXNet). ``tests/test_layers.py`` counts each ``_owned`` module as an import of this one."""
    def choices() -> Tuple:
        return tuple(getattr(importlib.import_module(f"dso_nas.{module}"), name))
    return choices


#: Keys whose values must be one of a set: ``key -> () -> allowed values`` (lists: each element).
#: Every set is read from the module that implements the choice, never listed here.
CHOICES: Dict[str, Callable[[], Tuple]] = {
    "model.space": lambda: _spaces().choices(),
    "task.name": lambda: _tasks().choices(),
    "data.name": lambda: _datasets().choices(),
    "model.ops": lambda: _ops().choices(),
    "model.stem": _owned("models.common", "STEM_KINDS"),
    "model.scope": _owned("spaces.dense.supernet", "SCOPES"),
    "model.aggregation": _owned("spaces.dense.block", "AGGREGATIONS"),
    "model.first_shortcut": _owned("spaces.dense.derived", "SHORTCUTS"),
    "search.budget": _owned("search.budget_kinds", "BUDGET_KINDS"),
    "search.until": _owned("search.stop", "STOP_RULES"),
    "search.method": lambda: _methods().choices(),
    "search.lr_schedule": _owned("search.schedule", "SEARCH_LR_SCHEDULES"),
    "train.kvstore": _owned("engine.distributed", "KVSTORES"),
    "latency.model": _owned("search.latency", "LATENCY_MODELS"),
    "retrain.schedule": _owned("engine.schedules", "SCHEDULES"),
    "retrain.layout": _owned("spaces.base", "LAYOUTS"),
    "model.darts.normal_ops": lambda: _darts_ops(),
    "model.darts.reduce_ops": lambda: _darts_ops(),
    "model.darts.derive": _owned("spaces.darts.derive", "DERIVE_RULES"),
}

#: Numeric ranges checked when a config is resolved: ``key -> (low, high)``; ``"[a"`` / ``"(a"``
#: are inclusive / exclusive bounds, ``None`` unbounded. List keys are checked element-wise.
RANGES: Dict[str, Tuple] = {
    "seed": ("[0", None),
    "model.in_channels": ("[1", None), "model.stem_channels": ("[1", None), "model.stages": ("[1", None),
    "model.blocks": ("[0", None), "model.channels": ("[1", None), "model.levels": ("[1", None),
    "model.darts.channels": ("[1", None), "model.darts.layers": ("[3", None), "model.darts.steps": ("[1", None),
    "model.darts.stem_multiplier": ("[1", None), "model.darts.stem_stride": ("[1", "2]"), "model.darts.eval_channels": ("[1", None),
    "model.darts.eval_layers": ("[3", None),
    "model.num_classes": ("[2", None), "model.bn_eps": ("(0", None), "model.bn_momentum": ("[0", "1)"),
    "data.limit": ("[0", None), "data.weight_fraction": ("(0", "1)"), "data.cutout": ("[0", None),
    "data.test_limit": ("[0", None), "data.image_size": ("[1", None), "data.resize": ("[0", None),
    "data.min_area": ("(0", "1]"), "data.jitter": ("[0", None), "data.lighting": ("[0", None),
    "data.threads": ("[0", None), "retrain.label_smoothing": ("[0", "1)"), "data.search_limit": ("[0", None), "data.validation": ("[0", None),
    "train.batch_size": ("[1", None), "train.eval_batch_size": ("[1", None), "train.clip_gradient": ("[0", None),
    "pretrain.epochs": ("[0", None), "pretrain.lr": ("(0", None), "pretrain.momentum": ("[0", "1)"),
    "pretrain.wd": ("[0", None),
    "search.epochs": ("[0", None), "search.patience": ("[1", None), "search.prune_every": ("[0", None), "search.ratio": ("[1", None),
    "search.lr": ("(0", None), "search.momentum": ("[0", "1)"), "search.wd": ("[0", None), "search.lr_min": ("[0", None), "search.clip_norm": ("[0", None),
    "search.arch.lr": ("(0", None), "search.arch.beta1": ("[0", "1)"), "search.arch.beta2": ("[0", "1)"),
    "search.arch.wd": ("[0", None), "search.nasp.eta": ("[0", None),
    "search.lambda_lr": ("(0", None), "search.lambda_momentum": ("[0", "1)"), "search.gamma": ("[0", None),
    "search.budget_every": ("[1", None), "search.gamma0": ("[0", None), "search.latency_every": ("[1", None),
    "latency.runs": ("[1", None), "latency.warmup": ("[0", None), "latency.input_size": ("[1", None),
    "retrain.epochs": ("[0", None), "retrain.batch_size": ("[1", None), "retrain.lr_max": ("(0", None),
    "retrain.lr_min": ("[0", None), "retrain.t0": ("[1", None), "retrain.t_mul": ("[1", None),
    "retrain.momentum": ("[0", "1)"), "retrain.wd": ("[0", None), "retrain.dropout": ("[0", "1)"),
    "retrain.drop_path": ("[0", "1)"), "retrain.aux_weight": ("[0", None), "retrain.aux_stage": ("[0", None),
    "retrain.target_params": ("[0", None), "retrain.target_flops": ("[0", None), "retrain.width_mult": ("(0", None),
    "retrain.eval_every": ("[0", None), "retrain.width_divisor": ("[1", None),
    "model.mobile.first_conv": ("[1", None), "model.mobile.first_block": ("[1", None),
    "model.output_stride": ("[0", None), "data.base_size": ("[1", None), "task.aspp_rates": ("[1", None),
    "model.mobile.widths": ("[1", None), "model.mobile.depths": ("[1", None), "model.mobile.last_conv": ("[1", None),
}
