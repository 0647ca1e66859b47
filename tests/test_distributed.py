"""Distributed training (issue 14): ``dso-nas launch`` jobs on loopback compute what one process
computes, stop together, resume exactly, and fail loudly instead of training on garbage.

Each job is a real ps-lite job (scheduler, server, two workers) on 127.0.0.1 with one OpenMP
thread and MXNet's synchronous engine per process (bitwise-reproducible arithmetic, as the
resume tests use). The one-process reference runs ``context=cpu:0,1``: the same global batch
split the same way, each half with its own BatchNorm statistics, as each worker's.
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import mxnet as mx
import numpy as np
import pytest

from datafiles import write_idx
from dso_nas.cli import parse_args
from dso_nas.data.pack import pack_image_folder
from dso_nas.config import load_config
from dso_nas.engine.devices import check_global_batch
from dso_nas.engine.distributed import from_config
from dso_nas.engine.launch import job_roles, read_hosts
from dso_nas.errors import ConfigError, UserError
from dso_nas.engine.loops import step_seed
from dso_nas.run.payloads import RetrainPayload, SearchPayload, load_payload
from dso_nas.tasks.classification import AccuracyMeter
from tolerance import U32
from test_imagenet import SMALL, TINY_NET, write_folder  # noqa: E402 - it puts tools/ on the path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MXNET_ENGINE_TYPE="NaiveEngine")
ENV.pop("DMLC_ROLE", None)
MICRO = ["--config", os.path.join(GOLDEN, "micro.yaml"), f"data.root={os.path.join(GOLDEN, 'fashion_mnist')}",
         "search.epochs=3", "search.gamma=0.25", "search.prune_every=1"]  # the workers prune (and drop) as one
DIST = ["train.kvstore=dist_sync"]
LIMIT_S = 240  # every job here ends by itself well within this


def _dso(args, timeout=LIMIT_S):
    return subprocess.run([sys.executable, "-m", "dso_nas"] + args, cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def _launch(worker_args, workers=2, timeout=LIMIT_S):
    return _dso(["launch", "--workers", str(workers), "--"] + worker_args, timeout=timeout)


def _lambdas(run_dir):
    hist = np.load(os.path.join(run_dir, "lambda_history.npz"))
    return {k: hist[k] for k in hist.files}


def _arch(run_dir):
    with open(os.path.join(run_dir, "architecture.yaml")) as f:
        return [line for line in f if not line.strip().startswith("run:")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The one-process search with the global batch split over two CPU contexts."""
    out = str(tmp_path_factory.mktemp("one") / "run")
    done = _dso(["search"] + MICRO + ["context=cpu:0,1", f"output_dir={out}"])
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dist") / "run")
    done = _launch(["dso-nas", "search"] + MICRO + DIST + [f"output_dir={out}"])
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stderr


def test_two_workers_compute_what_one_process_computes(reference, two_workers):
    """About 40 s, most of it the two module fixtures: a micro search in one process and the same
    search as a real ps-lite job (scheduler, server, two workers, each a fresh process importing
    MXNet), which the other tests of this file reuse."""
    out, log = two_workers
    one, two = _lambdas(reference), _lambdas(out)
    assert one.keys() == two.keys() and len(one) > 0
    for k in one:  # λ after every search epoch, bit for bit
        np.testing.assert_array_equal(one[k], two[k])
    assert _arch(reference) == _arch(out)
    a = load_payload(os.path.join(reference, "search.ckpt"), SearchPayload)
    b = load_payload(os.path.join(out, "search.ckpt"), SearchPayload)
    assert a.net.keys() == b.net.keys()
    for k in a.net:  # each context's gradient is the same arithmetic on the same rows, and a sum of
        np.testing.assert_array_equal(a.net[k], b.net[k], err_msg=k)  # two float32 terms has one order
    assert 0 < sum(int((lam == 0).sum()) for lam in two.values())  # the search zeroed something ...
    with open(os.path.join(out, "log.jsonl")) as f:
        pruned = [r["pruned_lambda"] for r in map(json.loads, f) if r.get("phase") == "search"]
    assert pruned and pruned[-1] > 0  # ... and pruned it for good, every worker the same edges (λ above)
    assert "[worker 1/2]" in log  # the other worker logs to the console, tagged


def test_only_rank_zero_writes_and_the_log_shows_the_whole_batch(reference, two_workers):
    out, _ = two_workers
    with open(os.path.join(out, "run.log")) as f:
        assert "[worker 1/2]" not in f.read()
    with open(os.path.join(reference, "log.jsonl")) as f:
        one = [eval_line(line) for line in f]
    with open(os.path.join(out, "log.jsonl")) as f:
        two = [eval_line(line) for line in f]
    assert len(one) == len(two)
    for x, y in zip(one, two):  # the metrics are summed over both workers' halves: hit and row counts
        for key in ("acc", "weights_acc", "lambda_acc", "zero_lambda", "flops"):  # are integers, exact in
            if key in x:  # float32 below 2**24, so the ratios are the same double
                assert x[key] == y[key], key


def eval_line(line):
    return json.loads(line)


def test_a_stopped_job_resumes_to_the_same_search(reference, tmp_path):
    """About 30 s: a two-worker job is started, stopped mid-search by SIGTERM and launched again
    with --resume (two ps-lite jobs of four processes each)."""
    out = str(tmp_path / "run")
    job = subprocess.Popen([sys.executable, "-m", "dso_nas", "launch", "--workers", "2", "--", "dso-nas", "search"]
                           + MICRO + DIST + [f"output_dir={out}", "progress=false"], cwd=ROOT, env=ENV,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.time() + LIMIT_S
    lines = []
    for line in job.stderr:  # stop in the middle of the search
        lines.append(line)
        if "search epoch 1/3" in line or time.time() > deadline:
            break
    job.send_signal(signal.SIGTERM)
    rest = job.communicate(timeout=LIMIT_S)[1]
    assert job.returncode == 2, "".join(lines) + rest
    assert "continue with: dso-nas launch --workers 2 -- dso-nas search --resume" in rest
    done = _launch(["dso-nas", "search", "--resume", out])
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = _lambdas(reference), _lambdas(out)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])
    assert _arch(reference) == _arch(out)


def test_a_worker_that_dies_stops_the_job(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        from dso_nas.engine.kvstore import process_store
        if process_store("dist_sync").rank == 1:
            print("worker 1 fails on purpose", file=sys.stderr, flush=True)
            os._exit(3)
        from dso_nas.cli import main
        sys.exit(main(["search"] + {MICRO + DIST + [f"output_dir={tmp_path / 'run'}"]!r}))
    """))
    t0 = time.time()
    done = _launch([sys.executable, str(script)], timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    # (the launcher's process index; ps-lite hands out ranks in the order workers connect)
    assert re.search(r"dso-nas launch: worker [01] exited with status 3; stopping the job", done.stderr)
    assert time.time() - t0 < 60


def test_a_worker_on_other_weights_is_caught(tmp_path):
    """A worker whose update went wrong once (here: its gradients scaled on one step) makes
    every worker stop with one line at the next check, not train on."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from dso_nas.engine import distributed
        from dso_nas.engine.kvstore import process_store
        if process_store("dist_sync").rank == 1:
            original, steps = distributed.DistTrainer.allreduce_grads, []
            def corrupted(self):
                original(self)
                steps.append(1)
                if len(steps) == 3:
                    for p in self._params:
                        if p.grad_req != "null":
                            for g in p.list_grad():
                                g *= 1.5
            distributed.DistTrainer.allreduce_grads = corrupted
        from dso_nas.cli import main
        sys.exit(main(["search"] + {MICRO + DIST + [f"output_dir={tmp_path / 'run'}"]!r}))
    """))
    done = _launch([sys.executable, str(script)], timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "the workers' weights differ at pretrain epoch 1" in done.stderr
    assert not os.path.exists(tmp_path / "run" / "search.ckpt")  # nothing garbage was saved


def test_retraining_on_two_workers_equals_one_process(reference, tmp_path):
    """Dropout and drop path off: one process draws both halves' masks from one generator,
    a worker its own (:func:`step_seed` with the rank), so with them on the runs are equal in
    distribution, not bit for bit."""
    arch = os.path.join(reference, "architecture.yaml")
    common = ["retrain", "--arch", arch] + MICRO[:3] + ["retrain.epochs=2", "retrain.dropout=0", "retrain.drop_path=0"]
    one = _dso(common + ["context=cpu:0,1", f"output_dir={tmp_path / 'one'}"])
    assert one.returncode == 0, one.stderr[-2000:]
    two = _launch(["dso-nas"] + common + DIST + [f"output_dir={tmp_path / 'two'}"])
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "result.json").read_text())
    b = json.loads((tmp_path / "two" / "result.json").read_text())
    assert a["test_acc"] == b["test_acc"] and a["params"] == b["params"]  # the test set sharded, then summed
    # Each context (worker) sums the same float32 per-sample losses of the same rows with the same
    # weights and BN statistics. One process adds those sums in float64; a worker adds its own in
    # float64, then rounds the total to float32 for the kvstore, whose server adds the two totals
    # in float32: two roundings of at most U32 of the total each (float64's own rounding, under
    # 1e-15 here, is covered by the slack of the second term). Before the Trainer kept BN
    # statistics out (Distributed.trainer), context 1 lost its first update and this was 3e-5.
    assert abs(a["test_loss"] - b["test_loss"]) <= 2 * U32 * 1.001 * abs(a["test_loss"])
    one_ckpt = load_payload(str(tmp_path / "one" / "retrain.ckpt"), RetrainPayload)
    two_ckpt = load_payload(str(tmp_path / "two" / "retrain.ckpt"), RetrainPayload)
    for k in one_ckpt.net:  # a sum of two float32 gradients has one order: equal to the bit
        np.testing.assert_array_equal(one_ckpt.net[k], two_ckpt.net[k], err_msg=k)


def test_a_recordio_search_runs_on_two_workers(tmp_path):
    """Each worker reads its part of the record file; rank 0 writes the D_w / D_λ split files
    and the others reuse them; the workers agree at every check (not equal to one process:
    the parts of a file are not the rows of a batch)."""
    write_idx(str(tmp_path / "idx"), n_train=100, n_test=40, seed=0)
    write_folder(str(tmp_path / "folder"), root=str(tmp_path / "idx"))
    pack_image_folder(str(tmp_path / "folder"), str(tmp_path / "rec"), resize=32, workers=1)
    out = tmp_path / "run"
    done = _launch(["dso-nas", "search"] + SMALL + TINY_NET + DIST
                   + [f"data.root={tmp_path / 'rec'}", f"data.cache={tmp_path / 'cache'}", f"output_dir={out}"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "architecture.yaml").is_file() and len((out / "log.jsonl").read_text().splitlines()) == 2
    assert "[worker 1/2] search epoch 1/1" in done.stderr


def test_the_latency_budget_is_measured_once_and_shared(tmp_path):
    """Rank 0 builds the lookup table and measures; the others receive its values, so every
    worker sets the same γ multipliers (else their λ, and then their weights, would part and
    the check before the checkpoint would stop the run)."""
    out, table = tmp_path / "run", tmp_path / "tables"
    done = _launch(["dso-nas", "search"] + MICRO[:3] + DIST
                   + ["search.epochs=2", "search.budget=latency", "latency.input_size=28", "latency.runs=2",
                      "latency.warmup=1", f"latency.table={table}", f"output_dir={out}"])
    assert done.returncode == 0, done.stderr[-3000:]
    gamma = json.loads((out / "log.jsonl").read_text().splitlines()[-1])["gamma"]
    assert gamma["kind"] == "latency" and gamma["measurements"] > 0 and gamma["latency"] > 0
    assert len(list(table.glob("*.json"))) == 1  # one table, written by rank 0


# -- one process: the seam and the command line -------------------------------------------------
def test_one_process_seam_is_a_no_op():
    dist = from_config(load_config(None, ["train.kvstore=device"]))
    assert (dist.kvstore, dist.rank, dist.world, dist.is_writer, dist.store) == ("device", 0, 1, True, None)
    meter = AccuracyMeter()
    meter.loss, meter.correct, meter.count = 3.0, 2, 4
    dist.sum_meters({"train": meter})
    assert meter.result()["acc"] == 0.5
    assert dist.from_writer(lambda a: 7.0)(None) == 7.0
    assert not dist.stop_flag().requested


def test_each_context_keeps_its_own_bn_statistics():
    """A step on two contexts moves context 1's running statistics as a one-context net fed
    context 1's rows moves its own: the Trainer holds only trainable parameters, so its first
    step broadcasts no running statistics from context 0 over the others."""
    def net_on(ctxs):
        net = mx.gluon.nn.HybridSequential()
        net.add(mx.gluon.nn.Conv2D(4, 3, in_channels=2, padding=1), mx.gluon.nn.BatchNorm(in_channels=4))
        mx.random.seed(0)
        net.initialize(mx.init.Xavier(), ctx=ctxs)
        opts = {"learning_rate": 0.0}  # the weights stay: the statistics alone move
        return net, from_config(load_config(None, [])).trainer(net.collect_params(), "sgd", opts)

    x = mx.nd.array(np.random.RandomState(0).normal(size=(8, 2, 5, 5)))
    two, two_trainer = net_on([mx.cpu(0), mx.cpu(1)])
    one, one_trainer = net_on([mx.cpu(0)])
    assert all(p.grad_req != "null" for p in two_trainer._params)  # noqa: SLF001
    for _ in range(2):
        halves = mx.gluon.utils.split_and_load(x, [mx.cpu(0), mx.cpu(1)])
        with mx.autograd.record():
            losses = [two(h).sum() for h in halves]
        mx.autograd.backward(losses)
        two_trainer.step(8)
        with mx.autograd.record():
            loss = one(x[4:]).sum()
        loss.backward()
        one_trainer.step(4)
    stats = [n for n in two.collect_params() if "running" in n]
    for name, other in zip(stats, [n for n in one.collect_params() if "running" in n]):
        mine = two.collect_params()[name]
        np.testing.assert_array_equal(mine.data(mx.cpu(1)).asnumpy(), one.collect_params()[other].data().asnumpy())
        assert not np.array_equal(mine.data(mx.cpu(0)).asnumpy(), mine.data(mx.cpu(1)).asnumpy())


def test_each_worker_draws_its_own_masks():
    assert step_seed(1, 2, 3, 0, rank=0) == step_seed(1, 2, 3)  # rank 0 is the one-process stream
    assert len({step_seed(1, 2, 3, 0, rank=r) for r in range(4)}) == 4


def test_the_global_batch_splits_over_contexts_and_workers():
    cfg = load_config(None, ["train.batch_size=12", "retrain.batch_size=16"])
    check_global_batch(cfg, num_contexts=2, world=2)
    with pytest.raises(ConfigError, match="train.batch_size=12 is the global batch .* 2 context.* x 4 worker"):
        check_global_batch(cfg, num_contexts=2, world=4)


def test_meter_state_round_trips():
    a = AccuracyMeter()
    a.loss, a.correct, a.correct_k, a.count, a.has_top_k = 5.0, 3, 4, 8, True
    b = AccuracyMeter()
    b.load_state(a.state())
    assert b.result() == a.result()


def test_dist_kvstore_outside_a_launcher_is_one_line():
    with pytest.raises(ConfigError, match="dso-nas launch --workers N"):
        from_config(load_config(None, ["train.kvstore=dist_sync"]))
    done = _dso(["search"] + MICRO + DIST + ["output_dir=/tmp/never"], timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("dso-nas: error:")]
    assert len(errors) == 1 and errors[0].startswith("dso-nas: error: train.kvstore=dist_sync runs under")


def test_launch_command_line(tmp_path):
    args = parse_args(["launch", "--workers", "2", "--", "dso-nas", "search", "--config", "x.yaml", "seed=1"])
    assert args.workers == 2 and args.servers == 1
    assert args.worker_command == ["dso-nas", "search", "--config", "x.yaml", "seed=1"]
    roles = job_roles(["cmd"], workers=3, servers=2, hosts=["a", "b"])
    assert [r.name for r in roles] == ["scheduler", "server 0", "server 1", "worker 0", "worker 1", "worker 2"]
    assert [r.host for r in roles] == [None, "a", "b", "a", "b", "a"]
    with pytest.raises(UserError, match="command after --"):
        job_roles([], workers=1, servers=1)
    hosts = tmp_path / "hosts"
    hosts.write_text("# machines\nnode1\n\nnode2  # the second\n")
    assert read_hosts(str(hosts)) == ["node1", "node2"]
    hosts.write_text("# none\n")
    with pytest.raises(UserError, match="lists no host"):
        read_hosts(str(hosts))
    done = _dso(["launch", "--workers", "1"], timeout=60)
    assert done.returncode == 2 and "command after --" in done.stderr
