"""Architecture derivation from λ, the architecture file, drawings and the Table-1 baselines."""
import os

import numpy as np
import pytest
import yaml

from dso_nas.errors import ArchitectureError
from dso_nas.spaces.archfile import load_architecture, save_architecture
from dso_nas.spaces.dense.arch import Architecture, Layout, derive_architecture
from dso_nas.spaces.dense.cell import Cell, derive_block
from dso_nas.spaces.dense.baselines import full_architecture, random_architecture
from dso_nas.plots.cells import draw_architecture, draw_cell
from dso_nas.spaces.dense.graph import block_edges, live_ops, node_name, num_lambda

OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def lam_with(levels, n_ops, live, value=1.0):
    """Flat λ with ``value`` on the named edges ``(src, dst)`` and exact zeros elsewhere."""
    names = [(node_name(s, levels), node_name(d, levels)) for s, d in block_edges(levels, n_ops)]
    unknown = set(live) - set(names)
    assert not unknown, unknown
    return np.array([value if e in live else 0.0 for e in names], dtype=np.float32)


def by_node(cell):
    return {k.node: k for k in cell.ops}


def small_layout(blocks=(2, 1), levels=3):
    return Layout(stem="cifar", in_channels=3, stem_channels=4, channels=(4, 8), blocks=blocks,
                  levels=levels, ops=OPS)


# ----------------------------------------------------------------------------- derivation


def test_dead_op_without_live_input_is_dropped_with_its_edges():
    # 2.0 has no live input but live edges to the output and to 3.0; 3.0 also reads 1.0.
    live = {("2.0", "out"), ("2.0", "3.0"), ("1.0", "3.0"), ("3.0", "out"), ("1.0", "out")}
    cell = derive_block(lam_with(3, 2, live), 3, OPS[:2])
    ops = by_node(cell)
    assert sorted(ops) == ["1.0", "3.0"]
    assert ops["3.0"].inputs == ("1.0",)
    assert ops["1.0"].output and ops["3.0"].output
    assert ("2.0", "out") not in cell.edges()


def test_forward_propagation_kills_consumer_of_dead_op():
    # 3.1 reads only 2.0, which has no live input: both die although 3.1 -> out is live.
    live = {("2.0", "3.1"), ("3.1", "out"), ("1.1", "out")}
    cell = derive_block(lam_with(3, 2, live), 3, OPS[:2])
    assert [k.node for k in cell.ops] == ["1.1"]


def test_backward_propagation_kills_op_feeding_only_dead_op():
    # 1.1 feeds only 2.1; 2.1 feeds only 3.0; 3.0 reaches neither the output nor an op.
    live = {("1.1", "2.1"), ("2.1", "3.0"), ("1.0", "out")}
    cell = derive_block(lam_with(3, 2, live), 3, OPS[:2])
    assert [k.node for k in cell.ops] == ["1.0"]
    assert cell.edges() == [("in", "1.0"), ("1.0", "out")]


def test_op_whose_only_consumer_is_pruned_at_the_output():
    # 1.0 -> 2.0 -> out is live, 1.1 -> 2.1 but 2.1's output λ is zero and it has no consumer.
    live = {("1.0", "2.0"), ("2.0", "out"), ("1.1", "2.1")}
    cell = derive_block(lam_with(2, 2, live), 2, OPS[:2])
    ops = by_node(cell)
    assert sorted(ops) == ["1.0", "2.0"]
    assert not ops["1.0"].output and ops["2.0"].output
    assert ops["2.0"].inputs == ("1.0",)


def test_everything_pruned_is_the_identity_cell():
    cell = derive_block(np.zeros(num_lambda(4, 4)), 4, OPS)
    assert cell.is_identity and cell.ops == () and cell.output_nodes == []


def test_all_ones_keeps_every_op_and_edge():
    levels, n_ops = 4, 4
    cell = derive_block(np.ones(num_lambda(levels, n_ops)), levels, OPS)
    assert len(cell.ops) == levels * n_ops
    assert all(k.output for k in cell.ops)
    # every λ edge plus the λ-free edge from the input to each level-1 op
    assert len(cell.edges()) == num_lambda(levels, n_ops) + n_ops == 128
    assert by_node(cell)["4.3"].inputs == ("in",) + tuple(f"{i}.{j}" for i in (1, 2, 3) for j in range(4))


def test_only_exact_zero_removes_an_edge():
    lam = lam_with(2, 2, {("1.0", "2.1"), ("2.1", "out")}, value=1e-12)
    lam[[i for i, (s, d) in enumerate(block_edges(2, 2)) if node_name(d, 2) == "out"][0]] = -0.0
    cell = derive_block(lam, 2, OPS[:2])
    assert [k.node for k in cell.ops] == ["1.0", "2.1"]
    negative = derive_block(-lam, 2, OPS[:2])
    assert [k.node for k in negative.ops] == ["1.0", "2.1"]


def test_derivation_matches_search_block_rule_and_mask_round_trips():
    rng = np.random.RandomState(0)
    for levels, n_ops in ((2, 2), (3, 4), (4, 4)):
        for rate in (0.1, 0.3, 0.6):
            lam = (rng.random_sample(num_lambda(levels, n_ops)) < rate).astype(np.float32)
            cell = derive_block(lam, levels, OPS[:n_ops])
            assert {(k.level, k.index) for k in cell.ops} == live_ops(lam != 0, levels, n_ops)
            assert derive_block(cell.mask(levels, n_ops), levels, OPS[:n_ops]) == cell


def test_wrong_lambda_length_is_rejected():
    with pytest.raises(ValueError, match="124"):
        derive_block(np.ones(10), 4, OPS)


def test_derive_architecture_scopes_and_meta():
    layout = small_layout()
    n = num_lambda(3, 4)
    share = derive_architecture([np.ones(n)], scope="share", layout=layout, meta={"run": "x"})
    assert len(share.cells) == 1 and len(share.block_cells()) == 3
    assert share.meta["run"] == "x" and share.meta["lambda"]["nonzero"] == n
    lams = [np.zeros(n), np.ones(n), np.ones(n)]
    full = derive_architecture(lams, scope="full", layout=layout)
    assert [len(c.ops) for c in full.cells] == [0, 12, 12]
    assert full.meta["kept_ops"] == [0, 12, 12]
    with pytest.raises(ValueError, match="3 λ vector"):
        derive_architecture(lams[:2], scope="full", layout=layout)


# ----------------------------------------------------------------------------- file


@pytest.fixture
def archs():
    layout = small_layout()
    return {
        "share": random_architecture(layout, scope="share", keep_rate=0.4, seed=1),
        "full": random_architecture(layout, scope="full", keep_rate=0.4, seed=2),
    }


@pytest.mark.parametrize("scope", ["share", "full"])
def test_yaml_round_trip_is_exact(tmp_path, archs, scope):
    arch = archs[scope]
    assert len(arch.cells) == (1 if scope == "share" else 3)
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    save_architecture(arch, str(first))
    loaded = load_architecture(str(first))
    assert loaded == arch
    assert loaded.to_dict() == arch.to_dict()
    assert Architecture.from_dict(arch.to_dict()) == arch
    save_architecture(loaded, str(second))
    assert first.read_bytes() == second.read_bytes()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_yaml_is_human_readable(tmp_path, archs):
    path = tmp_path / "arch.yaml"
    save_architecture(archs["share"], str(path))
    text = path.read_text()
    assert "scope: share" in text and "{node: '1.0', op: sep_conv_3x3, inputs: [in]" in text


def test_identity_cell_round_trips(tmp_path):
    arch = derive_architecture([np.zeros(num_lambda(3, 4))], scope="share", layout=small_layout())
    save_architecture(arch, str(tmp_path / "a.yaml"))
    assert load_architecture(str(tmp_path / "a.yaml")).cells == [Cell()]


def _write(tmp_path, data, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _mutate(arch, fn):
    d = arch.to_dict()
    fn(d)
    return d


def _cell0(d):
    return d["cells"][0]


def _node(d, name):
    return next(e for e in _cell0(d) if e["node"] == name)


@pytest.mark.parametrize("mutation, message", [
    (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    (lambda d: d.pop("levels"), "missing key 'levels'"),
    (lambda d: d.update(version=7), "version 7"),
    (lambda d: d.update(scope="some"), "'scope' must be one of"),
    (lambda d: d.update(ops=["sep_conv_3x3", "conv_9x9", "avg_pool_3x3", "max_pool_3x3"]), "unknown op 'conv_9x9'"),
    (lambda d: d.update(blocks=[2]), "'channels' has 2 stages but 'blocks' has 1"),
    (lambda d: d.update(channels=[4, 0]), "positive integers"),
    (lambda d: d.update(cells=d["cells"] * 2), "needs 1 cell(s), got 2"),
    (lambda d: _node(d, "1.0").update(op="max_pool_3x3"), "is op 'sep_conv_3x3', not 'max_pool_3x3'"),
    (lambda d: _node(d, "1.0").update(inputs=["in", "1.1"]), "level-1 op reads only the block input"),
    (lambda d: _node(d, "3.0").update(inputs=["9.9"]), "bad input node name '9.9'"),
    (lambda d: _node(d, "3.0").update(node="x"), "bad node name 'x'"),
    (lambda d: _node(d, "3.0").update(node="out"), "bad node name 'out'"),
    (lambda d: _node(d, "3.0").update(node="1.7"), "has op index 7, but only 4 ops"),
    (lambda d: _node(d, "3.0").update(inputs=["3.1"]), "reads 3.1, which is not a kept op of an earlier level"),
    (lambda d: _node(d, "3.0").update(foo=1), "unknown key 'foo'"),
    (lambda d: _node(d, "3.0").update(output="yes"), "'output' must be true or false"),
    (lambda d: d["cells"][0].append(dict(_node(d, "3.0"))), "lists node 3.0 twice"),
    (lambda d: [e.update(output=False) for e in _cell0(d)], "feeds neither the output nor a kept op"),
])
def test_malformed_architecture_files(tmp_path, mutation, message):
    arch = full_architecture(small_layout())
    path = _write(tmp_path, _mutate(arch, mutation))
    with pytest.raises(ArchitectureError) as err:
        load_architecture(path)
    text = str(err.value)
    assert message in text and path in text and "\n" not in text


def test_input_from_pruned_node_is_rejected(tmp_path):
    # 2.0 is pruned (all its λ zero); an edited file makes 3.0 read it.
    live = {("1.0", "3.0"), ("3.0", "out")}
    arch = derive_architecture([lam_with(3, 4, live)], scope="share", layout=small_layout())
    d = _mutate(arch, lambda d: _node(d, "3.0").update(inputs=["1.0", "2.0"]))
    with pytest.raises(ArchitectureError, match="reads 2.0, which is not a kept op"):
        Architecture.from_dict(d)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("version: [1\n", "is not valid YAML"),
    ("- 1\n- 2\n", "must be a mapping of keys, got list"),
    ("", "must be a mapping of keys, got NoneType"),
])
def test_unreadable_architecture_files(tmp_path, content, message):
    path = str(tmp_path / "missing.yaml") if content is None else _write(tmp_path, content)
    with pytest.raises(ArchitectureError) as err:
        load_architecture(path)
    assert message in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- baselines


def test_random_architecture_is_reproducible_and_rate_bounded():
    layout = small_layout()
    a = random_architecture(layout, scope="full", keep_rate=0.3, seed=5)
    b = random_architecture(layout, scope="full", keep_rate=0.3, seed=5)
    c = random_architecture(layout, scope="full", keep_rate=0.3, seed=6)
    assert a == b and a.cells != c.cells
    assert a.meta["source"] == "random-full" and a.meta["seed"] == 5
    assert 0.15 < a.meta["lambda"]["nonzero"] / a.meta["lambda"]["total"] < 0.45
    none = random_architecture(layout, scope="share", keep_rate=0.0, seed=0)
    assert none.cells == [Cell()]
    every = random_architecture(a, scope="share", keep_rate=1.0, seed=0)
    assert every.cells == full_architecture(layout).cells


def test_full_architecture_keeps_everything():
    arch = full_architecture(small_layout())
    assert arch.scope == "share" and len(arch.cells[0].ops) == 12
    assert len(arch.cells[0].edges()) == num_lambda(3, 4) + 4


# ----------------------------------------------------------------------------- drawing


def test_draw_cell_writes_png(tmp_path, archs):
    path = draw_cell(archs["share"].cells[0], 3, 4, str(tmp_path / "sub" / "cell.png"), title="t")
    data = open(path, "rb").read()
    assert data[:8] == PNG_MAGIC and len(data) > 2000
    empty = draw_cell(Cell(), 3, 4, str(tmp_path / "empty.png"))
    assert open(empty, "rb").read()[:8] == PNG_MAGIC


def test_draw_architecture_one_png_per_distinct_cell(tmp_path):
    layout = small_layout(blocks=(2, 2))
    n = num_lambda(3, 4)
    arch = derive_architecture([np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)], scope="full", layout=layout)
    paths = draw_architecture(arch, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["cell_b00.png", "cell_b01.png"]
    assert all(open(p, "rb").read()[:8] == PNG_MAGIC for p in paths)
    share = draw_architecture(full_architecture(layout), str(tmp_path / "share"))
    assert [os.path.basename(p) for p in share] == ["cell.png"]
