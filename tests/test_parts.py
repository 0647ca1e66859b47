"""The run's parts are built once, by the run folder (``open_run``), and handed on: who writes
the folder is asked of one distributed seam."""
import os

import pytest

import dso_nas.run.parts as parts_mod
from datafiles import write_idx
from dso_nas.errors import ArchitectureError
from dso_nas.run.folder import SEARCH_CKPT, open_run
from dso_nas.run.payloads import SearchPayload

MICRO = ["data.name=fashion_mnist", "model.in_channels=1", "model.stem_channels=4", "model.stages=2",
         "model.blocks=[1, 1]", "model.channels=[4, 8]", "model.levels=2", "train.batch_size=16",
         "retrain.batch_size=16", "progress=false"]


@pytest.fixture()
def counted(monkeypatch):
    calls = []
    real = parts_mod.from_config

    def from_config(cfg):
        calls.append(cfg.output_dir)
        return real(cfg)
    monkeypatch.setattr(parts_mod, "from_config", from_config)
    return calls


def test_open_run_builds_the_parts_once(tmp_path, counted):
    write_idx(str(tmp_path / "data"), n_train=16, n_test=8)
    out = str(tmp_path / "run")
    cfg, run_dir, state, parts = open_run(None, MICRO + [f"data.root={tmp_path / 'data'}", f"output_dir={out}"],
                                          None, SEARCH_CKPT, SearchPayload)
    assert (run_dir, state, len(counted)) == (out, None, 1)
    assert parts.dist.is_writer and parts.space.name == cfg.model.space and parts.ctxs
    assert os.path.isfile(os.path.join(out, "config.yaml"))
    cfg2, _, _, parts2 = open_run(None, [], out, SEARCH_CKPT, SearchPayload)  # resume: once more, no more
    assert len(counted) == 2 and parts2.backend == parts.backend and cfg2.to_dict() == cfg.to_dict()


def test_check_runs_before_the_folder_is_made(tmp_path, counted):
    write_idx(str(tmp_path / "data"), n_train=16, n_test=8)
    out = str(tmp_path / "run")
    seen = []

    def check(cfg, parts):
        seen.append(parts)
        raise ArchitectureError("does not fit")
    with pytest.raises(ArchitectureError):
        open_run(None, MICRO + [f"data.root={tmp_path / 'data'}", f"output_dir={out}"], None, SEARCH_CKPT,
                 SearchPayload, check)
    assert len(seen) == 1 and len(counted) == 1 and not os.path.exists(out)
