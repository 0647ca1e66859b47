"""``dso-nas export``: a derived network as deployable files, checked against the Gluon net.

Whatever the space, the network is the one retraining builds (:func:`build_derived` at the
retraining width), in inference form (:func:`inference_config`: no aux head, dropout or drop
path; BatchNorm reads its running statistics), with the weights of a retraining checkpoint or
a seeded initialisation. Every check runs one fixed random batch (seed ``cfg.seed``). Formats:

* ``mxnet``: ``<name>-symbol.json`` + ``<name>-0000.params`` (``HybridBlock.export``), reloaded
  with ``SymbolBlock.imports``: its outputs must equal the Gluon net's;
* ``onnx``: ``<name>.onnx`` (``mx.onnx.export_model``), checked by ``onnx.checker`` and, when
  ``onnxruntime`` imports, run on the same batch. mx.onnx has no converter for the oneDNN
  form's ``_contrib_BatchNormWithReLU``; a net in that form is exported in the ``reference``
  form (same Parameters, same function, plain ``BatchNorm`` + ``relu``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import warnings
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..config import CfgNode, config_from_dict, load_config, merge, parse_overrides, validate
from ..data import dataset_spec
from ..errors import CheckpointError, UserError, native_message
from ..ops import REFERENCE
from ..paths import check_output, staged_folder
from ..latency import mean_forward_ms, wall_clock_latency
from ..spaces.archfile import architecture_from_dict, architecture_space, load_architecture, space_override
from . import checkpoint as ckpt
from .folder import RETRAIN_CKPT
from .init import initialize
from .nets import build_derived, inference_config, retrain_arch, width_for
from .parts import Parts, parts_of
from .payloads import RetrainPayload, load_payload

__all__ = ["FORMATS", "export", "export_files", "measure_exported_latency", "exported_latency"]

LOG = logging.getLogger("dso_nas")

FORMATS = ("mxnet", "onnx")
#: Largest |Gluon - reloaded symbol| accepted (the same graph and kernels: 0 in practice).
MXNET_TOLERANCE = 1e-6
#: Largest |MXNet - onnxruntime| / max(1, max |output|) before a warning (other kernels and
#: summation order).
ONNX_TOLERANCE = 1e-4


def _onnx_modules() -> Tuple[Any, Any]:
    """``(onnx, onnxruntime or None)``; ``UserError`` without ``onnx``."""
    try:
        import onnx  # noqa: PLC0415 - an optional dependency
    except ImportError:
        raise UserError("format onnx needs the onnx package (onnx<1.19 for MXNet 1.9.1): "
                        "pip install 'dso_nas[onnx]'") from None
    try:
        import onnxruntime  # noqa: PLC0415 - an optional dependency
    except ImportError:
        onnxruntime = None
    return onnx, onnxruntime


def _ort_session(onnxruntime: Any, path: str) -> Any:
    """An onnxruntime CPU session on as many threads as MXNet's OpenMP (``OMP_NUM_THREADS``)."""
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS") or 0)
    opts.log_severity_level = 3
    return onnxruntime.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def _first(out: Any) -> mx.nd.NDArray:
    return out[0] if isinstance(out, (list, tuple)) else out


def _imports(sym_file: str, params_file: str, ctx: mx.Context) -> mx.gluon.SymbolBlock:
    """The exported files as a SymbolBlock (input ``data``; its float32 type is set by the first call)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Cannot decide type for ... data"
        return mx.gluon.SymbolBlock.imports(sym_file, ["data"], params_file, ctx=ctx)


def _resolve(arch_path: Optional[str], checkpoint_path: Optional[str], config_path: Optional[str],
             overrides: Sequence[str]) -> Tuple[CfgNode, Parts, Any, Optional[RetrainPayload], str]:
    """The config, its parts, the architecture as retraining builds it, the checkpoint (if
    any) and its path."""
    if not arch_path and not checkpoint_path:
        raise UserError("export needs --arch ARCH_FILE (or --checkpoint of a retraining)")
    state = None
    if checkpoint_path:
        if os.path.isdir(checkpoint_path):
            checkpoint_path = os.path.join(checkpoint_path, RETRAIN_CKPT)
        state = load_payload(checkpoint_path, RetrainPayload)
    arch = load_architecture(arch_path) if arch_path else architecture_from_dict(state.arch)
    if state is not None and not config_path:  # the retraining's own config, as `dso-nas evaluate` reads it
        cfg = config_from_dict(state.config)
        merge(cfg, parse_overrides(overrides))
        validate(cfg)
    else:  # its space from the file; without --config its setting too, as `dso-nas info --arch` reads it
        own = [] if config_path else architecture_space(arch).info_overrides(arch)
        cfg = load_config(config_path, [space_override(arch), *own, *overrides])
    parts = parts_of(cfg)
    arch = retrain_arch(arch, cfg, parts)
    if state is not None:
        def strip(d: Dict[str, Any]) -> Dict[str, Any]:
            return {k: v for k, v in d.items() if k != "meta"}

        if strip(arch.to_dict()) != strip(architecture_from_dict(state.arch).to_dict()):
            raise CheckpointError(f"{checkpoint_path} was retrained on another architecture than {arch_path}")
    return cfg, parts, arch, state, checkpoint_path or ""


def _initial_arrays(arch: Any, cfg: CfgNode, width: float, parts: Parts, x: mx.nd.NDArray) -> Dict[str, np.ndarray]:
    """Seeded initial weights whose BatchNorm statistics are those of ``x``: one training-mode
    forward and backward (no update) of the net built at ``model.bn_momentum=0``.

    With the initial statistics (mean 0, variance 1) an untrained deep net's activations grow
    layer by layer in inference mode: a paper-size CIFAR net overflows to NaN, and no output
    comparison means anything.
    """
    d = inference_config(cfg).to_dict()
    d["model"]["bn_momentum"] = 0.0
    net = build_derived(arch, CfgNode.from_dict(d), width, parts)
    initialize(net, [x.context], cfg.seed)
    with mx.autograd.record(train_mode=True):
        out = _first(net(x))
    out.backward()  # MXNet 1.9.1 moves the running statistics in BatchNorm's backward ...
    mx.nd.waitall()  # ... which reading the statistics alone does not wait for
    return ckpt.net_arrays(net)


def _inference_net(arch: Any, cfg: CfgNode, width: float, parts: Parts, x: mx.nd.NDArray,
                   arrays: Dict[str, np.ndarray], source: str) -> Any:
    """The deployed net in ``parts.backend``, hybridized, run once, then given ``arrays``.

    Parameters only retraining has (the aux head) are left out; any other mismatch is an error.
    """
    net = build_derived(arch, inference_config(cfg), width, parts)
    initialize(net, [x.context], cfg.seed)
    net.hybridize(static_alloc=True)
    try:
        _first(net(x)).wait_to_read()
    except mx.base.MXNetError as exc:
        msg = native_message(exc)
        raise UserError(f"the derived net cannot run on {tuple(x.shape)} inputs: {msg}") from None
    keys = set(net._collect_params_with_prefix())  # noqa: SLF001 - the checkpoint's keys
    dropped = sorted(set(arrays) - keys)
    if dropped:
        LOG.info("not exported: %d training-only parameter(s) of %s (%s, ...)", len(dropped), source, dropped[0])
    ckpt.load_net_arrays(net, {k: v for k, v in arrays.items() if k in keys}, source=source)
    return net


def _export_mxnet(net: Any, prefix: str, x: mx.nd.NDArray, expected: np.ndarray) -> Tuple[str, str, float]:
    """``net.export(prefix)``, reloaded as a SymbolBlock; its files and max |diff| on ``x``."""
    net.export(prefix, epoch=0)
    sym_file, params_file = f"{prefix}-symbol.json", f"{prefix}-0000.params"
    block = _imports(sym_file, params_file, x.context)
    diff = float(np.abs(_first(block(x)).asnumpy() - expected).max())
    if not diff <= MXNET_TOLERANCE:
        raise UserError(f"the reloaded {sym_file} differs from the Gluon net by {diff:.3g} (> {MXNET_TOLERANCE})")
    return sym_file, params_file, diff


def _symbol_ops(sym_file: str) -> set:
    with open(sym_file, encoding="utf-8") as f:
        return {node["op"] for node in json.load(f)["nodes"]} - {"null"}


@contextlib.contextmanager
def _converter_opset(onnx: Any, opset: int) -> Iterator[None]:
    """onnx's newest opset reads as ``opset`` inside (``onnx.defs.onnx_opset_version`` and the
    checker's default context), restored after.

    mx.onnx 1.9.1 declares and checks its graph at onnx's newest opset (23 with onnx 1.18)
    although its converters write opset <= 13 nodes: a ``ReduceMean`` with an ``axes``
    attribute (``mean``: the mobile space's squeeze-excite) fails that check (``axes`` is an
    input since opset 18). Declared at the converters' opset, the nodes are read as written.
    """
    saved_version, saved_imports = onnx.defs.onnx_opset_version, onnx.checker.DEFAULT_CONTEXT.opset_imports
    onnx.defs.onnx_opset_version = lambda: opset
    onnx.checker.DEFAULT_CONTEXT.opset_imports = {"": opset}
    try:
        yield
    finally:
        onnx.defs.onnx_opset_version = saved_version
        onnx.checker.DEFAULT_CONTEXT.opset_imports = saved_imports


def _export_onnx(sym_file: str, params_file: str, path: str, shape: Tuple[int, ...]) -> int:
    """``mx.onnx.export_model`` of the symbol files to ``path`` at the converters' opset
    (:func:`_converter_opset`), its weights left out of the graph inputs (constants that
    runtimes may fold), checked by ``onnx.checker``; the opset."""
    onnx, _ = _onnx_modules()
    from mxnet import onnx as mx_onnx  # noqa: PLC0415 - needs the onnx package
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph  # noqa: PLC0415 - needs the onnx package

    opset = max(v for v in MXNetGraph.registry_ if v <= onnx.defs.onnx_opset_version())
    try:
        with _converter_opset(onnx, opset):
            mx_onnx.export_model(sym_file, params_file, in_shapes=[tuple(shape)], in_types=[np.float32],
                                 onnx_file_path=path)
    except (AttributeError, NotImplementedError, onnx.checker.ValidationError) as exc:  # a converter's refusal
        raise UserError(f"mx.onnx cannot export {sym_file}: {str(exc).strip().splitlines()[0]}") from None
    model = onnx.load(path)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise UserError(f"onnx.checker refuses the exported {path}: {str(exc).splitlines()[0]}") from None
    onnx.save(model, path)
    return opset


def measure_exported_latency(sym_file: str, params_file: str, input_shape: Sequence[int], *, runs: int, warmup: int,
                             onnx_file: Optional[str] = None, ctx: Optional[mx.Context] = None) -> Dict[str, Any]:
    """Latency (ms) of the exported files: the reloaded MXNet SymbolBlock, timed by
    :func:`~dso_nas.latency.wall_clock_latency` (mean of ``runs`` forwards after
    ``warmup``), and the onnxruntime session of ``onnx_file`` when onnxruntime imports (same
    protocol, :func:`~dso_nas.latency.mean_forward_ms`; as many threads as MXNet's OpenMP)."""
    ctx = ctx or mx.cpu()
    block = _imports(sym_file, params_file, ctx)
    with warnings.catch_warnings():  # its initialize() keeps the loaded weights, warning per Parameter
        warnings.simplefilter("ignore")
        out: Dict[str, Any] = {"mxnet_symbol_ms": wall_clock_latency(block, tuple(input_shape), runs=runs,
                                                                     warmup=warmup, ctx=ctx)}
    if onnx_file:
        _, onnxruntime = _onnx_modules()
        if onnxruntime is not None:
            sess = _ort_session(onnxruntime, onnx_file)
            feed = {sess.get_inputs()[0].name: np.ones(tuple(input_shape), dtype=np.float32)}
            out["onnxruntime_ms"] = mean_forward_ms(lambda: sess.run(None, feed), runs=runs, warmup=warmup)
    out.update(latency_input=list(input_shape), latency_runs=int(runs), latency_warmup=int(warmup))
    return out


def export_files(formats: Sequence[str], name: str = "model") -> Tuple[str, ...]:
    """The names :func:`export` writes into its folder for ``formats``."""
    return ((f"{name}-symbol.json", f"{name}-0000.params") if "mxnet" in formats else ()) + \
        ((f"{name}.onnx",) if "onnx" in formats else ())


def export(arch_path: Optional[str], checkpoint_path: Optional[str], config_path: Optional[str],
           overrides: Sequence[str], out_dir: str, formats: Sequence[str] = FORMATS, batch: int = 1,
           input_size: Optional[int] = None, name: str = "model", latency: bool = False,
           force: bool = False) -> Dict[str, Any]:
    """Export a derived network as MXNet symbol/params and/or ONNX files, checked.

    Parameters
    ----------
    arch_path : str, optional
        Architecture file; optional with a checkpoint (which holds its architecture).
    checkpoint_path : str, optional
        A ``retrain.ckpt`` (or its run folder) whose weights are exported; none: seeded
        initialisation (``cfg.seed``) with the check batch's BatchNorm statistics
        (:func:`_initial_arrays`).
    config_path, overrides
        The config (default: the checkpoint's, else the defaults) and ``KEY=VALUE`` overrides.
    out_dir : str
        Folder of the files (made if missing; checked before any work). They are written into
        a staged folder beside it and moved in once every check passed
        (:func:`dso_nas.paths.staged_folder`).
    formats : sequence of str
        Any of :data:`FORMATS`.
    batch, input_size
        Input batch and side (default: the dataset's, as ``dso-nas info`` reads it).
    name : str
        File name stem.
    latency : bool
        Add :func:`measure_exported_latency` (batch 1, ``latency.runs`` / ``latency.warmup``).
    force : bool
        Replace files of the same names ``out_dir`` already holds (else one line naming them).

    Returns
    -------
    dict
        Files written (bytes each), max |diff| per format, op forms and, if asked, latency.

    Raises
    ------
    UserError
        Bad input, an unknown format, a missing onnx package or a failed check.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"unknown export format {unknown[0] if unknown else ''!r}; valid: {', '.join(FORMATS)}, all")
    if "onnx" in formats:
        _onnx_modules()
    if batch < 1 or (input_size is not None and input_size < 1):
        raise UserError(f"--batch and --input-size must be positive, got {batch} and {input_size}")
    cfg, parts, arch, state, ckpt_path = _resolve(arch_path, checkpoint_path, config_path, overrides)
    check_output(out_dir, "--out", force=force, replaces=export_files(formats, name))  # before any work
    side = int(input_size or dataset_spec(cfg.data.name).input_side(cfg))
    shape = (int(batch), int(cfg.model.in_channels), side, side)
    width = state.width_mult if state is not None else width_for(arch, cfg, (side, side), parts)
    ctx = parts.ctxs[0]
    x = mx.nd.array(np.random.RandomState(cfg.seed).standard_normal(shape).astype(np.float32), ctx=ctx)
    arrays = state.net if state is not None else _initial_arrays(arch, cfg, width, parts, x)
    net = _inference_net(arch, cfg, width, parts, x, arrays, ckpt_path or "the initial weights")
    expected = _first(net(x)).asnumpy()
    out: Dict[str, Any] = {"arch": arch_path, "checkpoint": ckpt_path or None,
                           "weights": "checkpoint" if state is not None else "initialised",
                           "bn_statistics": "checkpoint" if state is not None else "check batch",
                           "space": parts.space.name, "input": list(shape), "width_mult": width,
                           "max_abs_output": float(np.abs(expected).max()), "files": {}}
    with staged_folder(out_dir, "--out") as stage, tempfile.TemporaryDirectory(prefix="dso-export-") as tmp:
        folder = stage if "mxnet" in formats else tmp
        sym_file, params_file, diff = _export_mxnet(net, os.path.join(folder, name), x, expected)
        if "mxnet" in formats:
            out["mxnet"] = {"form": parts.backend, "max_abs_diff": diff}
            out["files"].update({p: os.path.getsize(p) for p in (sym_file, params_file)})
        onnx_file = None
        if "onnx" in formats:
            onnx_file = os.path.join(stage, f"{name}.onnx")
            out["onnx"] = _onnx_files(net, arch, cfg, width, parts, x, expected, sym_file, params_file,
                                      onnx_file, tmp, name)
            out["files"][onnx_file] = os.path.getsize(onnx_file)
        if latency:
            lat = cfg.latency
            out["latency"] = measure_exported_latency(sym_file, params_file, (1,) + shape[1:], runs=lat.runs,
                                                      warmup=lat.warmup, ctx=ctx,
                                                      onnx_file=onnx_file if batch == 1 else None)
    out["files"] = {os.path.join(out_dir, os.path.basename(p)): size for p, size in out["files"].items()}
    LOG.info("exported %s", ", ".join(out["files"]))
    return out


def _onnx_files(net: Any, arch: Any, cfg: CfgNode, width: float, parts: Parts, x: mx.nd.NDArray,
                expected: np.ndarray, sym_file: str, params_file: str, onnx_file: str, tmp: str,
                name: str) -> Dict[str, Any]:
    """The ONNX export (in the reference form when mx.onnx lacks a converter of the net's form)."""
    from mxnet import onnx as mx_onnx  # noqa: PLC0415 - needs the onnx package

    record: Dict[str, Any] = {"form": parts.backend}
    missing = sorted(_symbol_ops(sym_file) - set(mx_onnx.get_operator_support()))
    if missing and parts.backend != REFERENCE:
        LOG.info("mx.onnx has no converter for %s (the %s form): exporting the reference form",
                 ", ".join(missing), parts.backend)
        ref_parts = dataclasses.replace(parts, backend=REFERENCE)
        ref = _inference_net(arch, cfg, width, ref_parts, x, ckpt.net_arrays(net), "the exported net")
        ref_out = _first(ref(x)).asnumpy()
        sym_file, params_file, _ = _export_mxnet(ref, os.path.join(tmp, f"{name}-reference"), x, ref_out)
        record.update(form=REFERENCE, unsupported_ops={parts.backend: missing})
        missing = sorted(_symbol_ops(sym_file) - set(mx_onnx.get_operator_support()))
    if missing:
        raise UserError(f"mx.onnx cannot export the operator(s) {', '.join(missing)} of this network")
    record["opset"] = _export_onnx(sym_file, params_file, onnx_file, tuple(x.shape))
    record["checker"] = "passed"
    _, onnxruntime = _onnx_modules()
    record["onnxruntime"] = getattr(onnxruntime, "__version__", None)
    if onnxruntime is not None:
        sess = _ort_session(onnxruntime, onnx_file)
        got = sess.run(None, {sess.get_inputs()[0].name: x.asnumpy()})[0]
        diff = float(np.abs(got - expected).max())
        record["max_abs_diff"] = diff
        scale = max(1.0, float(np.abs(expected).max()))
        (LOG.warning if not diff <= ONNX_TOLERANCE * scale else LOG.info)(
            "onnxruntime vs MXNet: max |diff| %.3g (outputs up to %.3g)", diff, scale)
    return record


def exported_latency(arch_path: str, config_path: Optional[str], overrides: Sequence[str] = (),
                     input_size: Optional[int] = None) -> Dict[str, Any]:
    """Batch-1 latency of the exported net (MXNet symbol; onnxruntime when onnx and onnxruntime
    import), exported to a temporary folder: what ``dso-nas info --arch --latency`` adds."""
    try:
        _, onnxruntime = _onnx_modules()
    except UserError:
        onnxruntime = None
    formats = FORMATS if onnxruntime is not None else ("mxnet",)
    with tempfile.TemporaryDirectory(prefix="dso-latency-") as tmp:
        return export(arch_path, None, config_path, overrides, tmp, formats=formats, input_size=input_size,
                      latency=True)["latency"]
