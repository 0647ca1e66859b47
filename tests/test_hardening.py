"""Bad input and interruptions (issue 11): each case ends in one clear line and leaves nothing
behind; checkpoints carry a checksum; overrides may stand anywhere on the command line."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from datafiles import write_idx
from dso_nas.cli import main, parse_args
from dso_nas.errors import CheckpointError
from dso_nas.run import checkpoint as ckpt
from test_pipeline import MICRO, ONE_THREAD, ROOT, _error_line, _micro, _wait_for_search_epoch


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fmnist")
    write_idx(str(folder), n_train=64, n_test=32, seed=0)
    return str(folder)


def test_output_dir_that_is_a_file_or_under_one(fmnist, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["search"] + _micro(fmnist, str(afile))) == 2
    assert f"output_dir {afile} is a file" in _error_line(capsys)
    assert main(["search"] + _micro(fmnist, str(afile / "run"))) == 2
    assert f"lies under {afile}, which is a file" in _error_line(capsys)


def test_output_dir_not_writable(fmnist, tmp_path, capsys, monkeypatch):
    # root may write anywhere a mode allows nothing, so the check's answer is simulated
    import dso_nas.run.folder as folder

    monkeypatch.setattr(folder.os, "access", lambda path, mode: False)
    out = tmp_path / "ro" / "run"
    assert main(["search"] + _micro(fmnist, str(out))) == 2
    assert "is not writable" in _error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("override, needle", [
    ("search.gamma=-1", "'search.gamma' must be in [0, inf), got -1.0"),
    ("search.epochs=-1", "'search.epochs' must be in [0, inf)"),
    ("pretrain.lr=0", "'pretrain.lr' must be in (0, inf)"),
    ("data.weight_fraction=1", "'data.weight_fraction' must be in (0, 1)"),
    ("model.ops=[no_such_op]", "'model.ops' must be one of"),
])
def test_bad_values_stop_before_anything_is_written(fmnist, tmp_path, capsys, override, needle):
    out = tmp_path / "run"
    assert main(["search"] + _micro(fmnist, str(out), override)) == 2
    assert needle in _error_line(capsys)
    assert not out.exists()


def test_retrain_without_arch_writes_nothing(fmnist, tmp_path, capsys):
    out = tmp_path / "retrain"
    assert main(["retrain"] + _micro(fmnist, str(out))) == 2
    assert "retrain needs --arch" in _error_line(capsys)
    assert not out.exists()


def test_overrides_anywhere_on_the_line():
    args = parse_args(["info", "--config", "c.yaml", "model.levels=3", "--json", "seed=1"])
    assert args.overrides == ["model.levels=3", "seed=1"] and args.json
    with pytest.raises(SystemExit):
        parse_args(["info", "--json", "--frobnicate"])
    with pytest.raises(SystemExit):
        parse_args(["report", "runs/x", "seed=1"])  # report takes no overrides


def test_resume_refuses_a_folder_whose_checkpoint_is_gone(fmnist, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["search"] + _micro(fmnist, out, "search.epochs=1")) == 0
    log = open(os.path.join(out, "log.jsonl")).read()
    os.remove(os.path.join(out, "search.ckpt"))
    assert main(["search", "--resume", out]) == 2
    assert "search.ckpt is gone" in _error_line(capsys)
    assert open(os.path.join(out, "log.jsonl")).read() == log  # nothing overwritten or appended


def test_damaged_checkpoint_is_refused(tmp_path):
    path = str(tmp_path / "x.ckpt")
    ckpt.save_checkpoint(path, {"kind": "search", "blob": bytes(range(256)) * 40})
    assert ckpt.load_checkpoint(path)["blob"][:3] == b"\x00\x01\x02"
    data = bytearray(open(path, "rb").read())
    mid = len(data) // 2
    data[mid:mid + 80] = bytes(b ^ 0xFF for b in data[mid:mid + 80])
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        ckpt.load_checkpoint(path)


def test_interrupted_run_names_the_run_command(fmnist, tmp_path):
    out = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-m", "dso_nas", "run"] + _micro(fmnist, out, "search.epochs=30"),
                            cwd=ROOT, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_search_epoch(out, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert proc.returncode == 2 and f"continue with: dso-nas run --resume {out}" in err, err[-1000:]


def test_architecture_input_must_match_the_config(fmnist, tmp_path, capsys):
    arch = str(tmp_path / "fm.yaml")
    assert subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_baseline.py"), "--kind", "full",
                           "--out", arch] + [o for o in MICRO if o.startswith("model.")], cwd=ROOT,
                          capture_output=True).returncode == 0
    assert main(["info", "--config", os.path.join(ROOT, "experiments", "cifar", "search.yaml"), "--arch", arch]) == 2
    assert "reads 1-channel images but model.in_channels=3" in _error_line(capsys)


def test_every_subcommand_shows_examples(capsys):
    from dso_nas.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
    for name, parser in sub.choices.items():
        text = parser.format_help()
        assert "examples:" in text and f"dso-nas {name} " in text, name
    help_lines = [l for l in open(os.path.join(ROOT, "Makefile")) if l.lstrip().startswith("@echo \"make ")]
    for target in ("search", "test", "install", "data", "bench", "clean", "cifar-search", "cifar-retrain"):
        assert any(f"make {target} " in l for l in help_lines), target


def test_every_command_is_a_table_entry_with_help_and_a_parser():
    """Every registered command has a help line and examples, builds its parser, is a subcommand
    of ``dso-nas`` (and nothing else is), and ``dso-nas CMD --help`` exits 0 without loading MXNet."""
    import argparse

    from dso_nas.cli import build_parser
    from dso_nas.commands import COMMANDS

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
    assert list(sub.choices) == list(COMMANDS.names())
    for name, command in COMMANDS.items():
        assert command.name == name and command.help and command.help == command.help.strip(), name
        assert not command.help.endswith("."), name
        assert command.examples and callable(command.run), name
        parser = argparse.ArgumentParser(prog=f"dso-nas {name}")
        command.arguments(parser)
        assert parser.format_help()
        assert sub.choices[name].description == command.description
    probe = ("import sys; from dso_nas.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
             "    assert 'mxnet' not in sys.modules, 'loaded MXNet'; sys.exit(e.code)\n")
    for name in COMMANDS:
        done = subprocess.run([sys.executable, "-m", "dso_nas", name, "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0 and f"dso-nas {name} " in done.stdout and not done.stderr, (name, done.stderr)
        done = subprocess.run([sys.executable, "-c", probe, name, "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, (name, done.stderr[-1000:])


def test_the_tools_that_are_commands_keep_their_scripts():
    """``tools/study.py`` and the other scripts of subcommands take the same arguments and end the
    same way (one error line naming the script, exit 2)."""
    for script, command in (("study", "study"), ("search_check", "search-check"), ("lambda_noise", "lambda-noise"),
                            ("make_baseline", "baseline"), ("plot_run", "plot")):
        path = os.path.join(ROOT, "tools", f"{script}.py")
        done = subprocess.run([sys.executable, path, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and f"dso-nas {command} ..." in done.stdout, (script, done.stderr)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "lambda_noise.py"), ROOT, "--batches", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == "lambda_noise: error: --batches must be >= 2, got 1\n"


def test_search_without_config_says_the_defaults_are_cifar(tmp_path, capsys):
    assert main(["search", f"output_dir={tmp_path / 'x'}"]) == 2
    line = _error_line(capsys)
    assert "paper's CIFAR-10 setting" in line and "experiments/fashion_mnist/search.yaml" in line


def test_onednn_isa_is_capped_and_mixed_block_widths_train():
    """16-channel ops feeding a conv to 40 channels failed in oneDNN's AVX-512 backward
    ("could not create a primitive descriptor iterator"); the entry points cap oneDNN at AVX2."""
    import mxnet as mx
    from mxnet import autograd
    from mxnet.gluon import nn

    from dso_nas.ops import OPS

    assert os.environ.get("DNNL_MAX_CPU_ISA") == "AVX2"
    for name in OPS.names():
        seq = nn.HybridSequential()
        seq.add(OPS.get(name).build(16, 1, backend="onednn"), nn.Conv2D(40, 1, in_channels=16, use_bias=False))
        seq.initialize(mx.init.Xavier())
        seq.hybridize(static_alloc=True)
        x = mx.nd.random.uniform(shape=(4, 16, 14, 14))
        x.attach_grad()
        with autograd.record():
            y = seq(x)
        y.backward()
        assert np.isfinite(x.grad.asnumpy()).all()


# -- issue 25, part 4: what a new user's bad input still broke ---------------------------------


@pytest.fixture
def binary_file(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    return str(path)


@pytest.mark.parametrize("args, what", [
    (["info", "--config"], "config file"),
    (["latency", "--config"], "config file"),
    (["search", "--config"], "config file"),
    (["info", "--arch"], "architecture file"),
    (["export", "--format", "mxnet", "--arch"], "architecture file"),
    (["launch", "--workers", "1", "--hosts"], "hosts file"),
])
def test_a_binary_input_file_is_one_line(binary_file, tmp_path, capsys, args, what):
    tail = ["--", "true"] if args[0] == "launch" else [f"output_dir={tmp_path / 'run'}"]
    assert main(args + [binary_file] + tail) == 2
    assert f"{what} {binary_file} is a binary file, not text" in _error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_a_binary_or_latin1_study_file_is_one_line(binary_file, tmp_path):
    from dso_nas.errors import ConfigError
    from dso_nas.study import load_study

    with pytest.raises(ConfigError, match="is a binary file, not text"):
        load_study(binary_file)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("version: 1\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_study(str(latin))


RESNET20 = os.path.join(ROOT, "experiments", "study", "cifar_resnet20.yaml")
MOBILENET = os.path.join(ROOT, "experiments", "mobile", "reference", "mobilenet_v2.yaml")
FM_CONFIG = os.path.join(ROOT, "experiments", "fashion_mnist", "search.yaml")
PLAIN = ["retrain.aux_weight=0", "retrain.drop_path=0"]


def test_the_space_comes_from_the_architecture_file(tmp_path, capsys):
    import json

    assert main(["info", "--config", FM_CONFIG, "--arch", RESNET20, "--json", *PLAIN]) == 0
    assert json.loads(capsys.readouterr().out)["params"] > 0
    out = tmp_path / "export"
    assert main(["export", "--config", FM_CONFIG, "--arch", RESNET20, "--format", "mxnet", "--out", str(out),
                 *PLAIN]) == 0
    assert json.loads(capsys.readouterr().out)["space"] == "cifar_resnet"
    for args in (["info", "--config", FM_CONFIG, "--arch", RESNET20, *PLAIN, "model.space=dense"],
                 ["retrain", "--config", FM_CONFIG, "--arch", RESNET20, *PLAIN, "model.space=dense",
                  f"output_dir={tmp_path / 'run'}"]):
        assert main(args) == 2
        assert "is a cifar_resnet architecture but model.space=dense" in _error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_a_mobile_architecture_on_another_layout_is_one_line(tmp_path, capsys):
    mobile = os.path.join(ROOT, "experiments", "mobile", "micro_search.yaml")
    assert main(["info", "--config", mobile, "--arch", MOBILENET, "retrain.layout=config"]) == 2
    assert "cannot lay an architecture on another layout" in _error_line(capsys)
    assert main(["retrain", "--config", FM_CONFIG, "--arch", MOBILENET, "retrain.layout=config",
                 f"output_dir={tmp_path / 'run'}"]) == 2
    _error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_latency_checks_its_architectures_before_measuring(tmp_path, capsys, monkeypatch):
    from dso_nas.latency import LatencyTable

    monkeypatch.setattr(LatencyTable, "measure", lambda *a, **k: pytest.fail("measured before the checks"))
    table = f"latency.table={tmp_path / 'table'}"
    assert main(["latency", "--config", FM_CONFIG, "--arch", str(tmp_path / "nope.yaml"), table]) == 2
    assert "architecture file not found" in _error_line(capsys)
    assert main(["latency", "--config", FM_CONFIG, "--arch", MOBILENET, table]) == 2
    assert f"architecture file {MOBILENET}: the architecture is a mobile architecture" in _error_line(capsys)
    assert not (tmp_path / "table").exists()


def test_latency_from_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p).startswith(str(tmp_path))
                        else real_access(p, mode))
    monkeypatch.chdir(tmp_path)  # the default latency.table, runs/latency, lies here
    assert main(["latency", "--config", FM_CONFIG]) == 2
    assert f"latency.table runs/latency: {tmp_path} is not writable" in _error_line(capsys)
    assert os.listdir(tmp_path) == []


def _image_folder(root, bad=()):
    """A 2-class ImageFolder tree of 20x24 JPEGs (train: 3 a class, val: 2); ``bad``: extra
    training files with these bytes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        for c in ("a", "b"):
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                    os.path.join(root, split, c, f"{i}.jpg"))
    for i, data in enumerate(bad):
        with open(os.path.join(root, "train", "a", f"bad{i}.jpg"), "wb") as f:
            f.write(data)
    return str(root)


def _tree(path):
    """Every path under ``path`` with its size and mtime: what a refused command must not change."""
    out = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(folder, name)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns) if name in files else None
    return out


def test_pack_refuses_to_replace_or_write_where_it_cannot(tmp_path, capsys, monkeypatch):
    src = _image_folder(tmp_path / "src")
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = tmp_path / "rec"
    for args, needle in ((["--workers", "-1"], "--workers and --seed >= 0"), (["--seed", "-1"], "--seed >= 0"),
                         (["--quality", "0"], "--quality in 1..100"), (["--resize", "100000"], "--resize must be in")):
        assert main(["pack", src, str(out), *args]) == 2
        assert needle in _error_line(capsys)
    assert main(["pack", src, str(afile)]) == 2
    assert f"OUT {afile} is a file, not a folder" in _error_line(capsys)
    before = _tree(tmp_path)
    assert main(["pack", src, str(out), "--workers", "1"]) == 0
    assert json_out(capsys)["train"] == 6
    packed = _tree(out)
    assert main(["pack", src, str(out), "--workers", "1"]) == 2
    assert f"OUT {out} already holds train.rec (and 4 more): add --force" in _error_line(capsys)
    assert _tree(out) == packed
    assert main(["pack", src, str(out), "--workers", "1", "--force"]) == 0
    assert json_out(capsys)["val"] == 4 and sorted(os.listdir(out)) == sorted(
        ["classes.txt", "train.idx", "train.rec", "val.idx", "val.rec"])
    assert set(_tree(tmp_path)) == set(before) | set(_tree(out)) | {str(out)}  # no *.tmp left anywhere
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p) == str(tmp_path / "ro")
                        else real_access(p, mode))
    (tmp_path / "ro").mkdir()
    assert main(["pack", src, str(tmp_path / "ro" / "rec")]) == 2
    assert f"{tmp_path / 'ro'} is not writable" in _error_line(capsys)
    assert os.listdir(tmp_path / "ro") == []


def json_out(capsys):
    import json

    return json.loads(capsys.readouterr().out)


def test_pack_refuses_undecodable_images_or_skips_them(tmp_path, capsys):
    good = open(_image_folder(tmp_path / "ok") + "/train/a/0.jpg", "rb").read()
    src = _image_folder(tmp_path / "src", bad=[b"not an image" * 8, good[:len(good) // 2]])
    out = tmp_path / "rec"
    assert main(["pack", src, str(out), "--workers", "1"]) == 2
    line = _error_line(capsys)
    assert "2 image(s) cannot be packed" in line and "bad" in line and "--skip-bad" in line
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["ok", "src"]
    assert main(["pack", src, str(out), "--workers", "1", "--skip-bad"]) == 0
    assert json_out(capsys) == {"train": 6, "val": 4, "classes": 2, "skipped": 2}


def test_an_undecodable_record_is_one_line_without_a_traceback(tmp_path):
    import mxnet as mx

    from dso_nas.data.imagenet import RecordLoader
    from dso_nas.data.recordio import check_record_file
    from dso_nas.errors import UserError

    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "x.idx"), str(tmp_path / "x.rec"), "w")
    for k in range(2):
        w.write_idx(k, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, k, 0), b"\xff\xd8 not a jpeg"))
    w.close()
    records = check_record_file(str(tmp_path / "x.rec"), str(tmp_path / "x.idx"))
    loader = RecordLoader(records, 2, train=False, seed=0, image_size=16, resize=0, augment=None, threads=1,
                          num_classes=2)
    with pytest.raises(UserError) as err:
        list(loader.epoch(0))
    assert "Traceback" not in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"cannot read {tmp_path / 'x.rec'}: ")


def test_export_refuses_to_replace_or_write_where_it_cannot(tmp_path, capsys, monkeypatch):
    import dso_nas.run.export as export_module

    base = ["export", "--config", FM_CONFIG, "--arch", RESNET20, "--format", "mxnet", *PLAIN]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(base + ["--out", str(afile)]) == 2
    assert f"--out {afile} is a file, not a folder" in _error_line(capsys)
    out = tmp_path / "export"
    assert main(base + ["--out", str(out)]) == 0
    capsys.readouterr()
    exported = _tree(out)
    assert main(base + ["--out", str(out)]) == 2
    assert f"--out {out} already holds model-symbol.json (and 1 more): add --force" in _error_line(capsys)

    def fail(*args, **kwargs):
        raise export_module.UserError("the check failed")

    with monkeypatch.context() as m:
        m.setattr(export_module, "measure_exported_latency", fail)
        assert main(base + ["--out", str(out), "--force"]) == 2
        assert "the check failed" in _error_line(capsys)
    assert _tree(out) == exported and sorted(os.listdir(tmp_path)) == ["afile", "export"]  # no staged folder left
    assert main(base + ["--out", str(out), "--force"]) == 0
    assert set(json_out(capsys)["files"]) == {str(out / "model-symbol.json"), str(out / "model-0000.params")}
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p) == str(tmp_path)
                        else real_access(p, mode))
    assert main(base + ["--out", str(tmp_path / "new")]) == 2
    assert f"--out {tmp_path / 'new'}: {tmp_path} is not writable" in _error_line(capsys)
    assert main(base + ["--batch", "0", "--out", str(tmp_path / "new")]) == 2
    assert "--batch and --input-size must be positive" in _error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["afile", "export"]


@pytest.mark.parametrize("args, needle", [
    (["--port", "70000", "--", "true"], "--port must be in 0..65535"),
    (["--port", "-1", "--", "true"], "--port must be in 0..65535"),
    (["--root-uri", "http://node1:9000", "--", "true"], "--root-uri must be a host name or IP address"),
    (["--servers", "0", "--", "true"], "at least one worker and one server"),
    (["--", "nosuchcommand-dso"], "'nosuchcommand-dso' is not an executable file or a program on PATH"),
    (["--", "dso-nas", "search", "--config", FM_CONFIG], "train.kvstore=local: each worker would run its own search"),
    (["--", "dso-nas", "info", "--config", FM_CONFIG], "dso-nas info does not train"),
    (["--", "dso-nas", "search", "--frobnicate"], "is not valid: unrecognized arguments: --frobnicate"),
])
def test_launch_checks_its_line_before_starting_anything(capsys, monkeypatch, args, needle):
    import dso_nas.engine.launch as launch_module

    monkeypatch.setattr(launch_module, "_start", lambda *a: pytest.fail("a process was started"))
    assert main(["launch", "--workers", "2", *args]) == 2
    assert needle in _error_line(capsys)


def test_launch_hosts_file_lists_hosts_only(tmp_path):
    from dso_nas.engine.launch import read_hosts
    from dso_nas.errors import UserError

    hosts = tmp_path / "hosts"
    hosts.write_text("node1\nme@10.0.0.2  # a user\n::1\n")
    assert read_hosts(str(hosts)) == ["node1", "me@10.0.0.2", "::1"]
    hosts.write_text("node1\nnot a host\n")
    with pytest.raises(UserError, match="line 2: 'not a host' is not a host name"):
        read_hosts(str(hosts))


def test_a_stopped_launched_job_names_the_launch_line(monkeypatch):
    from dso_nas.engine.launch import LAUNCH_ENV, Role, _env, launch_line
    from dso_nas.run.folder import resume_hint

    line = launch_line(2, 1, 0, None, None)
    assert line == "dso-nas launch --workers 2 --"
    assert _env(Role("worker 0", "worker", None, ["x"]), "127.0.0.1", 9000, 2, 1, line)[LAUNCH_ENV] == line
    assert launch_line(4, 2, 9091, "hosts.txt", "node0") == \
        "dso-nas launch --workers 4 --servers 2 --hosts hosts.txt --port 9091 --root-uri node0 --"
    monkeypatch.setenv(LAUNCH_ENV, line)
    assert resume_hint("search", "runs/x").endswith("continue with: dso-nas launch --workers 2 -- dso-nas search "
                                                    "--resume runs/x")
    monkeypatch.delenv(LAUNCH_ENV)
    assert resume_hint("run", "runs/x").endswith("continue with: dso-nas run --resume runs/x")


def test_every_help_example_names_files_that_exist():
    import re

    from dso_nas.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
    for name, parser in sub.choices.items():
        for path in re.findall(r"experiments/\S+\.yaml", parser.epilog or ""):
            assert os.path.isfile(os.path.join(ROOT, path)), f"dso-nas {name} --help names {path}"


def _seg_cfg(root, *extra):
    from dso_nas.config import load_config

    return load_config(None, ["task.name=segmentation", "data.name=voc", f"data.root={root}", "data.image_size=32",
                              "data.base_size=32", "model.num_classes=5", "train.batch_size=2",
                              "train.eval_batch_size=2", "retrain.batch_size=2", *extra])


def test_segmentation_labels_beyond_the_classes_are_one_line(tmp_path):
    from dso_nas.data import dataset_spec
    from dso_nas.errors import UserError
    from segfiles import tiny_voc

    tiny_voc(str(tmp_path), n_train=2, n_val=2, size=(32, 32), num_classes=5)
    loaders, _ = dataset_spec("voc").open(_seg_cfg(tmp_path), retrain=True)
    assert len(list(loaders.test.epoch(0))) == 1  # labels 0..4 and the ignore label pass
    for part in ("full", "test"):
        loaders, _ = dataset_spec("voc").open(_seg_cfg(tmp_path, "model.num_classes=3"), retrain=True)
        with pytest.raises(UserError, match=r"mask .*SegmentationClass/.*\.png holds label [34], not a class 0..2"):
            list(getattr(loaders, part).epoch(0))


def test_classification_labels_beyond_the_classes_are_one_line(fmnist, tmp_path, capsys):
    assert main(["search"] + _micro(fmnist, str(tmp_path / "run"), "model.num_classes=5")) == 2
    assert "data.name=fashion_mnist has labels up to 9 but model.num_classes=5" in _error_line(capsys)


def test_a_damaged_image_in_a_voc_folder_is_one_line(tmp_path):
    from dso_nas.data import dataset_spec
    from dso_nas.errors import UserError
    from segfiles import tiny_voc

    written = tiny_voc(str(tmp_path), n_train=2, n_val=2, size=(32, 32), num_classes=5)
    image = os.path.join(tmp_path, "VOC2012", "JPEGImages", written.splits["val"][0] + ".jpg")
    with open(image, "wb") as f:
        f.write(b"not a jpeg" * 20)
    loaders, _ = dataset_spec("voc").open(_seg_cfg(tmp_path), retrain=True)
    with pytest.raises(UserError, match=f"cannot read {image}: not an image format PIL knows"):
        list(loaders.test.epoch(0))


def test_evaluate_refuses_overrides_it_would_ignore(tmp_path, capsys):
    missing = str(tmp_path / "none.ckpt")
    for override in ("model.channels=[4, 4]", "data.name=cifar10", "retrain.dropout=0"):
        assert main(["evaluate", "--checkpoint", missing, override]) == 2
        assert f"{override.partition('=')[0]} cannot be overridden (only data.root" in _error_line(capsys)
    assert main(["evaluate", "--checkpoint", missing, "data.root=/elsewhere", "train.eval_batch_size=8"]) == 2
    assert "checkpoint not found" in _error_line(capsys)  # those keys pass: the missing file is what is wrong


# -- every path argument of every subcommand ---------------------------------------------------

#: The metavars of path arguments; a new subcommand's path arguments are walked by using one.
PATH_METAVARS = {"FILE", "DIR", "PATH", "ARCH_FILE", "RUN_DIR", "SRC", "OUT"}


def _path_arguments():
    """``(subcommand, action)`` of every path argument of ``dso-nas``, read from its parser."""
    from dso_nas.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
    return [(name, action) for name, parser in sub.choices.items() for action in parser._actions  # noqa: SLF001
            if action.metavar in PATH_METAVARS]


class _Inputs:
    """Valid inputs of every subcommand (so that only the path under test is wrong) in ``root``."""

    def __init__(self, root, fmnist):
        from dso_nas.config import load_config

        self.root = root
        config = os.path.join(root, "inputs", "micro.yaml")
        os.makedirs(os.path.dirname(config))
        cfg = load_config(None, _micro(fmnist, os.path.join(root, "run"), "retrain.aux_weight=0",
                                       "retrain.drop_path=0", f"latency.table={os.path.join(root, 'table')}"))
        with open(config, "w") as f:
            f.write(cfg.dump())
        src = _image_folder(os.path.join(root, "inputs", "folder"))
        self.valid = {"run": {"config": config}, "search": {"config": config},
                      "retrain": {"config": config, "arch": RESNET20}, "info": {"config": config},
                      "export": {"config": config, "arch": RESNET20, "out": os.path.join(root, "exported")},
                      "latency": {"config": config},
                      "pack": {"src": src, "out": os.path.join(root, "packed")},
                      "study": {"study": os.path.join(ROOT, "experiments", "study", "smoke.yaml")},
                      "lambda-noise": {"run": os.path.dirname(config)},  # not a run: only --out is tried
                      "baseline": {"config": config, "out": os.path.join(root, "baseline.yaml")},
                      "import-genotype": {"genotype": "Genotype(normal=[('skip_connect', 0), ('sep_conv_3x3', 1)], "
                                                      "normal_concat=[2], reduce=[('max_pool_3x3', 0), "
                                                      "('skip_connect', 1)], reduce_concat=[2])",
                                          "out": os.path.join(root, "genotype.yaml")}}
        self.extra = {"export": ["--format", "mxnet"], "pack": ["--workers", "1"],
                      "launch": ["--workers", "1", "--", "true"], "baseline": ["--kind", "full"],
                      "study": ["--summary"], "search-check": ["--summary"]}  # read only: nothing trains

    def argv(self, command, action, path):
        """The command line of ``command`` with ``path`` for ``action``, every other input valid."""
        from dso_nas.cli import build_parser

        sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
        actions = {a.dest: a for a in sub.choices[command]._actions}  # noqa: SLF001
        given = {**self.valid.get(command, {}), action.dest: path}
        argv = [command] + [given.pop(a.dest) for a in actions.values() if not a.option_strings and a.dest in given]
        for dest, value in given.items():
            argv += [actions[dest].option_strings[0], value]
        return argv + self.extra.get(command, [])


def test_every_path_argument_takes_a_file_a_folder_a_missing_path_and_a_read_only_place(
        fmnist, tmp_path, capsys, monkeypatch):
    """Each path argument of each subcommand, given a text file, an empty folder, a missing path
    and a path in a read-only folder: a proper success, or status 2 with one 'dso-nas: error:'
    line, no traceback, and nothing made or changed anywhere."""
    import dso_nas.engine.launch as launch_module
    from dso_nas.latency import LatencyTable

    root = str(tmp_path)
    inputs = _Inputs(root, fmnist)
    afile = os.path.join(root, "places", "text.yaml")
    os.makedirs(os.path.join(root, "places", "empty"))
    os.makedirs(os.path.join(root, "places", "ro"))
    with open(afile, "w") as f:
        f.write("just: text\n")
    places = {"file": afile, "folder": os.path.join(root, "places", "empty"),
              "missing": os.path.join(root, "places", "none", "x"),
              "read-only": os.path.join(root, "places", "ro", "x")}
    read_only = os.path.join(root, "places", "ro")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p).startswith(read_only)
                        else real_access(p, mode))
    monkeypatch.setattr(launch_module, "_start", lambda *a: pytest.fail("launch started a process"))
    monkeypatch.setattr(LatencyTable, "measure", lambda *a, **k: pytest.fail("latency measured"))
    monkeypatch.chdir(root)  # a default output in the working folder would show up in the tree
    walked = set()
    for command, action in _path_arguments():
        walked.add(command)
        for kind, path in places.items():
            argv = inputs.argv(command, action, path)
            before = _tree(root)
            status = main(argv)
            err = capsys.readouterr().err
            assert "Traceback" not in err, (argv, err[-2000:])
            if status == 0:  # a proper success (an output into a new or empty folder): undo it for the next
                for made in sorted(set(_tree(root)) - set(before), key=len):
                    if os.path.isdir(made):
                        shutil.rmtree(made)
                    elif os.path.lexists(made):
                        os.remove(made)
                continue
            errors = [line for line in err.splitlines() if line.startswith("dso-nas: error:")]
            assert status == 2 and len(errors) == 1, (kind, argv, err[-2000:])
            assert _tree(root) == before, (kind, argv, "changed the tree")
    assert walked >= {"run", "search", "retrain", "evaluate", "info", "export", "latency", "report", "pack", "launch",
                      "study", "search-check", "lambda-noise", "baseline", "plot"}


@pytest.mark.parametrize("kind", ["missing", "folder", "text"])
def test_train_init_that_is_not_a_checkpoint_is_one_line(fmnist, tmp_path, capsys, kind):
    init = {"missing": tmp_path / "none.ckpt", "folder": tmp_path, "text": tmp_path / "t.ckpt"}[kind]
    (tmp_path / "t.ckpt").write_text("just text\n")
    out = tmp_path / "run"
    assert main(["search"] + _micro(fmnist, str(out), f"train.init={init}")) == 2
    assert f"{init}" in _error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("content, needle", [
    (bytes(range(256)), "is a binary file, not text"),
    (b"[1, 2]", "must hold a JSON object"),
    (b"{not json", "is not valid JSON"),
    (b'{"test_error": 0.1}', "a dso-nas result has 'params', this one has not"),
])
def test_report_of_a_damaged_result_is_one_line(tmp_path, capsys, content, needle):
    from dso_nas.config import load_config

    (tmp_path / "config.yaml").write_text(load_config(None, []).dump())
    (tmp_path / "result.json").write_bytes(content)
    (tmp_path / "log.jsonl").write_bytes(b"\xff\xfe torn\n")
    assert main(["report", str(tmp_path)]) == 2
    assert needle in _error_line(capsys)


def test_make_baseline_refuses_to_replace_its_out_without_force(tmp_path, capsys, monkeypatch):
    from dso_nas.runlog import setup_logging

    monkeypatch.syspath_prepend(os.path.join(ROOT, "tools"))
    import make_baseline

    setup_logging(None)  # the tool logs to this test's stderr

    out = tmp_path / "full.yaml"
    args = ["--kind", "full", "--out", str(out)] + [o for o in MICRO if o.startswith("model.")]
    assert make_baseline.main(args) == 0
    capsys.readouterr()
    written = out.read_text()
    out.write_text(written + "# edited\n")
    assert make_baseline.main(args) == 2
    err = capsys.readouterr().err
    assert f"--out {out} exists: add --force" in err and err.count("\n") == 1
    assert out.read_text() == written + "# edited\n"
    assert make_baseline.main(args + ["--force"]) == 0 and out.read_text() == written
    assert make_baseline.main(["--kind", "full", "--out", str(tmp_path)]) == 2
    assert "is a folder, not a file" in capsys.readouterr().err


def test_image_folder_tool_refuses_to_write_over_a_tree(fmnist, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "tools"))
    import fashion_mnist_folder

    out = str(tmp_path / "folder")
    assert fashion_mnist_folder.main([out, "--root", fmnist, "--train", "6", "--val", "2"]) == 0
    assert fashion_mnist_folder.main([out, "--root", fmnist, "--train", "3", "--val", "2"]) == 2
    assert "already holds train (and 1 more): add --force" in capsys.readouterr().err
    assert fashion_mnist_folder.main([out, "--root", fmnist, "--train", "3", "--val", "2", "--force"]) == 0
    assert sum(len(files) for _, _, files in os.walk(os.path.join(out, "train"))) == 3  # none of the old six left


@pytest.mark.parametrize("override, needle", [
    ("output_dir=", "output_dir is empty: name a folder"),
    ("latency.table={afile}", "latency.table {afile} is a file, not a folder"),
])
def test_path_keys_are_checked_before_a_run_folder_is_made(fmnist, tmp_path, capsys, override, needle):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = tmp_path / "run"
    args = _micro(fmnist, str(out), "search.budget=latency", override.format(afile=afile))
    assert main(["search"] + args) == 2
    assert needle.format(afile=afile) in _error_line(capsys)
    assert not out.exists()
