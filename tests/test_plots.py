"""The plots package: a run folder's figures from a synthetic log.jsonl, a study's figures,
the never-failing form a finished phase calls, and Matplotlib imported only when drawing."""
import os
import subprocess
import sys

import numpy as np
import pytest

from dso_nas.errors import UserError
from dso_nas.plots import load_phases, plot_run, plot_run_or_warn, plot_study, series, stage_sizes
from dso_nas.plots.canvas import figure, save
from dso_nas.runlog import CONFIG_NAME, JSONL_NAME, write_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_BLOCKS, N_LAMBDA = 6, 60


def _pretrain(run_dir, epochs=3):
    for e in range(epochs):
        write_jsonl(run_dir, {"phase": "pretrain", "epoch": e, "loss": 2.0 - 0.3 * e, "acc": 0.3 + 0.1 * e,
                              "seconds": 1.0 + e})


def _search(run_dir, epochs=4):
    for e in range(epochs):
        flops = [int(1e6 * (b + 1) * (1.0 - 0.15 * e)) for b in range(N_BLOCKS)]
        write_jsonl(run_dir, {"phase": "search", "epoch": e, "weights_loss": 1.2 - 0.1 * e, "weights_acc": 0.6,
                              "lambda_loss": 1.3 - 0.1 * e, "lambda_acc": 0.55 + 0.02 * e,
                              "zero_lambda": 10 * e, "num_lambda": N_LAMBDA, "block_flops": flops,
                              "block_params": [f // 100 for f in flops], "flops": sum(flops),
                              "params": sum(flops) // 100, "gamma": {"base": 0.001, "scale": [1.0] * N_BLOCKS},
                              "seconds": 2.0 * (e + 1)})


def _retrain(run_dir, epochs=3):
    for e in range(epochs):
        rec = {"phase": "retrain", "epoch": e, "loss": 1.0 - 0.2 * e, "acc": 0.7 + 0.05 * e, "lr": 0.05,
               "seconds": 3.0 * (e + 1)}
        if e % 2 == 1:
            rec.update(test_loss=0.9, test_acc=0.72)
        write_jsonl(run_dir, rec)


def _assert_pngs(paths, names):
    assert [os.path.basename(p) for p in paths] == names
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == PNG_MAGIC
        assert os.path.getsize(p) > 10_000


def test_full_run_gives_three_plots(tmp_path):
    run = str(tmp_path)
    _pretrain(run)
    _search(run)
    os.makedirs(os.path.join(run, "retrain"))
    _retrain(os.path.join(run, "retrain"))
    (tmp_path / CONFIG_NAME).write_text("model:\n  blocks: [2, 2, 2]\n")
    paths = plot_run(run)
    _assert_pngs(paths, ["sparsity.png", "block_flops.png", "curves.png"])
    assert all(os.path.dirname(p) == run for p in paths)
    phases = load_phases(run)
    assert sorted(phases) == ["pretrain", "retrain", "search"]
    assert [r["epoch"] for r in phases["retrain"]] == [0, 1, 2]


def test_only_pretrain_gives_curves(tmp_path):
    _pretrain(str(tmp_path))
    _assert_pngs(plot_run(str(tmp_path)), ["curves.png"])
    assert not (tmp_path / "sparsity.png").exists() and not (tmp_path / "block_flops.png").exists()


def test_standalone_retrain_run(tmp_path):
    _retrain(str(tmp_path))
    _assert_pngs(plot_run(str(tmp_path)), ["curves.png"])


def test_empty_or_missing_log_gives_nothing(tmp_path):
    assert plot_run(str(tmp_path)) == []
    (tmp_path / JSONL_NAME).write_text("")
    assert plot_run(str(tmp_path)) == []
    assert os.listdir(tmp_path) == [JSONL_NAME]


def test_bad_input_raises_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        plot_run(str(tmp_path / "nope"))
    # a line torn by a kill mid-write is skipped, the rest still plots
    (tmp_path / JSONL_NAME).write_text('{"phase": "pretrain", "epoch": 0, "loss": 1.0, "acc": 0.5}\n'
                                       '{"phase": "pretrain", "epoch": 1, "loss"\n')
    assert [os.path.basename(p) for p in plot_run(str(tmp_path))] == ["curves.png"]


def test_series_skips_missing_values():
    recs = [{"epoch": 0, "test_acc": 0.5}, {"epoch": 1}, {"epoch": 2, "test_acc": 0.75}, {"epoch": 3, "test_acc": None}]
    x, y = series(recs, "test_acc")
    np.testing.assert_array_equal(x, [1, 3])
    np.testing.assert_allclose(y, [0.5, 0.75])
    assert series(recs, "loss")[0].size == 0


def test_stage_sizes(tmp_path):
    assert stage_sizes(str(tmp_path), 6) is None
    (tmp_path / CONFIG_NAME).write_text("model:\n  blocks: [2, 2, 2]\n")
    assert stage_sizes(str(tmp_path), 6) == [2, 2, 2]
    assert stage_sizes(str(tmp_path), 7) is None
    (tmp_path / CONFIG_NAME).write_text("model: [unclosed\n")
    assert stage_sizes(str(tmp_path), 6) is None


def test_tool_prints_paths(tmp_path):
    _pretrain(str(tmp_path), epochs=2)
    _search(str(tmp_path), epochs=2)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "plot_run.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True, env=dict(os.environ, MPLBACKEND="Agg"))
    lines = out.stdout.split()
    assert [os.path.basename(p) for p in lines] == ["sparsity.png", "block_flops.png", "curves.png"]
    assert all(os.path.exists(p) for p in lines)
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "plot_run.py"), str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_finished_phase_only_warns(tmp_path, caplog):
    """After a phase the run draws its plots; a folder it cannot plot is a warning, not a failure."""
    with caplog.at_level("WARNING", logger="dso_nas"):
        assert plot_run_or_warn(str(tmp_path / "nope")) is None
    assert "plots not written" in caplog.text and "does not exist" in caplog.text
    _pretrain(str(tmp_path))
    plot_run_or_warn(str(tmp_path))
    assert (tmp_path / "curves.png").exists()


def _study_body(tmp_path, with_search=True):
    arms = [{"name": "full", "label": "full block", "kind": "baseline"}]
    runs = [{"arm": "full", "seed": s, "kind": "baseline", "arch": str(tmp_path / f"full_{s}" / "architecture.yaml"),
             "params": 1e5 + s, "error": 0.1 + 0.01 * s} for s in (0, 1)]
    if with_search:
        arms.append({"name": "share", "label": "DSO-NAS-share", "kind": "search"})
        for s in (0, 1):
            folder = tmp_path / f"share_{s}"
            folder.mkdir()
            _search(str(folder), epochs=3)
            save(figure(2, 2), str(folder / "cell.png"))  # stands in for the searched cell's drawing
            runs.append({"arm": "share", "seed": s, "kind": "search", "arch": str(folder / "architecture.yaml"),
                         "params": 9e4, "error": 0.09})
    return {"arms": arms, "runs": runs, "seeds": [0, 1]}


def test_study_figures(tmp_path):
    written = plot_study(_study_body(tmp_path), str(tmp_path))
    assert [os.path.basename(p) for p in written] == ["error_vs_params.png", "search_sparsity.png",
                                                      "searched_blocks.png"]
    for p in written:
        with open(p, "rb") as f:
            assert f.read(8) == PNG_MAGIC
    baselines_only = tmp_path / "baselines"
    baselines_only.mkdir()
    written = plot_study(_study_body(baselines_only, with_search=False), str(baselines_only))
    assert [os.path.basename(p) for p in written] == ["error_vs_params.png"]


def test_import_leaves_matplotlib_out():
    """Importing the plots (as every run does) does not import Matplotlib; drawing does."""
    code = ("import sys, dso_nas.plots, dso_nas.spaces; assert 'matplotlib' not in sys.modules; "
            "from dso_nas.plots.canvas import figure; figure(1, 1); assert 'matplotlib' in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
