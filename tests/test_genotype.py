"""DARTS' genotype notation (dso_nas.spaces.darts.genotype): parsing every form found in the wild,
one-line errors, NASP's op aliases, the round trip, the reference architecture files pinned to the
published strings, and the import-genotype / export-genotype subcommands.

The reference files under experiments/darts/reference/ are written from :data:`REFERENCES`:
``DSO_NAS_WRITE_REFERENCES=1 pytest tests/test_genotype.py -k reference`` rewrites them;
otherwise the test checks each file is exactly what its recorded genotype string gives.
"""
import io
import os

import pytest
import yaml

from dso_nas.cli import main
from dso_nas.errors import ArchitectureError
from dso_nas.paths import atomic_write_bytes
from dso_nas.spaces.archfile import architecture_yaml
from dso_nas.spaces.darts.arch import Cell, DartsArchitecture
from dso_nas.spaces.darts.genotype import OP_ALIASES, format_genotype, parse_genotype

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF_DIR = os.path.join(ROOT, "experiments", "darts", "reference")

# The published genotypes, copied verbatim from the authors' code (repository, file @ commit, variable: see
# REFERENCES). NASP-codes moved genotypes.py to codes/genotypes.py in da320751 with the NASP line unchanged.
DARTS_V1 = ("DARTS_V1 = Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
            "reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = ("DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
            "reduce_concat=[2, 3, 4, 5])")
PDARTS = ("PDARTS = Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),"
          "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], "
          "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), "
          "('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], "
          "reduce_concat=range(2, 6))")
PC_DARTS = ("PC_DARTS_cifar = Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), "
            "('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
            "normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), "
            "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], "
            "reduce_concat=range(2, 6))")
NASP = ("NASP = Genotype(normal=[('conv_3x1_1x3', 0), ('conv 3x3', 1), ('dil_conv_3x3', 2), ('conv 3x3', 1), "
        "('dil_conv_3x3', 2), ('conv 3x3', 0), ('skip_connect', 0), ('dil_conv_3x3', 3)], normal_concat=range(2, 6), "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_5x5', 1), "
        "('skip_connect', 2), ('skip_connect', 3), ('skip_connect', 0), ('skip_connect', 1)], "
        "reduce_concat=range(2, 6))")

def _meta(name, repo, path, commit, variable, paper, params, error, std=None, published_in=None):
    meta = {"name": name, "source": f"{repo} {path}", "commit": commit, "variable": variable, "paper": paper,
            "dataset": "cifar10", "published_params_m": params, "published_error": error}
    if std is not None:
        meta["published_error_std"] = std
    if published_in:
        meta["published_in"] = published_in
    return meta


_DARTS = ("quark0/darts", "cnn/genotypes.py", "a00cad05db217f702a510cb494a2d5c5b19f6b8b")
_DARTS_PAPER = "Liu et al., DARTS, ICLR 2019"
#: file name -> (genotype string, meta). The published counts are the CIFAR-10 test error (%,
#: with cutout) and parameters (millions) of the 20-cell network, as the papers' tables give them.
REFERENCES = {
    "darts_v1.yaml": (DARTS_V1, _meta("DARTS (first order)", *_DARTS, "DARTS_V1", _DARTS_PAPER, 3.3, 3.00, 0.14,
                                      "DARTS Table 1")),
    "darts_v2.yaml": (DARTS_V2, _meta("DARTS (second order)", *_DARTS, "DARTS_V2", _DARTS_PAPER, 3.3, 2.76, 0.09,
                                      "DARTS Table 1")),
    "pdarts.yaml": (PDARTS, _meta("P-DARTS (CIFAR-10)", "chenxin061/pdarts", "genotypes.py",
                                  "b1575e101aedb7396a89d8a7f74d0318877a1156", "PDARTS",
                                  "Chen et al., P-DARTS, ICCV 2019",
                                  3.4, 2.50, None, "P-DARTS Table 1")),
    "pcdarts.yaml": (PC_DARTS, _meta("PC-DARTS (CIFAR-10)", "yuhuixu1993/PC-DARTS", "genotypes.py",
                                     "283b086cc3d567aacf448511cd0b28d13a728f49", "PC_DARTS_cifar",
                                     "Xu et al., PC-DARTS, ICLR 2020", 3.6, 2.57, 0.07, "PC-DARTS Table 1")),
    "nasp.yaml": (NASP, _meta("NASP (12 ops)", "xujinfan/NASP-codes", "genotypes.py",
                              "6ad8e5485aba914a8aff702b2e9dd3254114cc64", "NASP", "Yao et al., NASP, AAAI 2020",
                              7.4, 2.5, None, "NASP Table 2, NASP (more ops) + ct")),
}


def _reference_text(name):
    genotype, meta = REFERENCES[name]
    arch = parse_genotype(genotype, in_channels=3, meta=meta)
    header = (f"# {meta['name']}, {meta['paper']}: {meta['source']} {meta['variable']}, written from\n"
              "# its genotype string by tests/test_genotype.py (DSO_NAS_WRITE_REFERENCES=1 rewrites it); "
              "do not edit.\n")
    return header + architecture_yaml(arch)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_files_are_the_published_genotypes(name):
    path = os.path.join(REF_DIR, name)
    expected = _reference_text(name)
    if os.environ.get("DSO_NAS_WRITE_REFERENCES") == "1":
        atomic_write_bytes(path, expected.encode("utf-8"))
    with open(path, encoding="utf-8") as f:
        assert f.read() == expected, f"{name} differs from its genotype string; regenerate it"
    arch = DartsArchitecture.from_dict(yaml.safe_load(expected))
    genotype, meta = REFERENCES[name]
    assert arch == parse_genotype(genotype) and arch.meta == meta and arch.in_channels == 3


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_round_trip_string_arch_string_arch(name):
    genotype, _ = REFERENCES[name]
    arch = parse_genotype(genotype)
    text = format_genotype(arch)
    again = parse_genotype(text)
    assert again == arch
    assert format_genotype(again) == text
    assert text.startswith("Genotype(normal=[(") and "normal_concat=[2, 3, 4, 5]" in text and "range" not in text
    assert all(alias not in text for alias in OP_ALIASES)


def test_the_cells_are_read_two_pairs_per_node():
    arch = parse_genotype(DARTS_V2)
    assert arch.normal.nodes[0] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))
    assert arch.normal.nodes[3] == (("skip_connect", 0), ("dil_conv_3x3", 2))
    assert arch.normal.concat == (2, 3, 4, 5) and arch.reduce.concat == (2, 3, 4, 5)
    assert arch.reduce.entries()[-1] == (5, "max_pool_3x3", 1)
    assert parse_genotype(PDARTS).normal.concat == (2, 3, 4, 5)


def test_nasp_aliases_become_our_op_names():
    arch = parse_genotype(NASP)
    assert arch.normal.nodes[0] == (("conv_3x1_1x3", 0), ("conv_3x3", 1))
    assert "conv 3x3" not in arch.ops() and "max_pool_5x5" in arch.ops()
    assert OP_ALIASES == {"conv 1x1": "conv_1x1", "conv 3x3": "conv_3x3", "sep_3x3": "sep_conv_3x3",
                          "sep_5x5": "sep_conv_5x5", "sep_7x7": "sep_conv_7x7"}
    for alias, ours in OP_ALIASES.items():
        text = (f"Genotype(normal=[({alias!r}, 0), ('{alias}', 1)], normal_concat=[2], "
                "reduce=[('max_pool_3x3', 0), ('skip_connect', 1)], reduce_concat=[2])")
        assert parse_genotype(text).normal.nodes == (((ours, 0), (ours, 1)),)


_V2 = parse_genotype(DARTS_V2)
_BODY = DARTS_V2.split("= ", 1)[1]  # Genotype(...)


@pytest.mark.parametrize("text", [
    _BODY,
    "genotypes." + _BODY,
    "utils.genotypes." + _BODY,
    "genotype = " + _BODY,
    "  \n# DARTS' second order cell\n" + _BODY.replace(", ", ",\n    ") + "\n\n",
    _BODY.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)").replace(
        "reduce_concat=[2, 3, 4, 5]", "reduce_concat=list(range(2, 6))"),
    _BODY.replace("[2, 3, 4, 5]", "(2, 3, 4, 5)"),
    _BODY.replace("normal=", "").replace("normal_concat=", "").replace("reduce=", "").replace("reduce_concat=", ""),
    "Genotype(" + _BODY.split("normal=", 1)[1].split(", normal_concat=")[0]
    + ", [2, 3, 4, 5], reduce_concat=[2, 3, 4, 5], "
    "reduce=" + _BODY.split("reduce=", 1)[1].split(", reduce_concat=")[0] + ")",
    _BODY.replace("('sep_conv_3x3', 0)", "['sep_conv_3x3', 0]").replace("'", '"'),
], ids=["bare", "module", "dotted", "assigned", "multiline", "range", "tuple", "positional", "mixed", "lists"])
def test_the_forms_found_in_the_wild(text):
    assert parse_genotype(text) == _V2


def test_in_channels_and_meta():
    arch = parse_genotype(_BODY, in_channels=1, meta={"name": "x"})
    assert arch.in_channels == 1 and arch.meta == {"name": "x"}
    with pytest.raises(ArchitectureError, match="in_channels must be a positive integer"):
        parse_genotype(_BODY, in_channels=0)


def _replace(old, new, text=_BODY):
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("text, fragment", [
    ("", "empty text"),
    ("   \n ", "empty text"),
    ("Genotype(normal=[('sep_conv_3x3', 0)", "cannot be parsed"),
    ("Genotype normal=[]", "cannot be parsed (line 1)"),
    ("this is not python", "not a Genotype(...) call: got 'this is not python'"),
    ("x = 1; y = 2", "holds 2 statements"),
    ("[('sep_conv_3x3', 0)]", "not a Genotype(...) call: got \"[('sep_conv_3x3', 0)]\""),
    ("Namedtuple(normal=[])", "not a Genotype(...) call: got 'Namedtuple(normal=[])'"),
    ("genotypes.Genotype.normal", "not a Genotype(...) call"),
    ("Genotype", "not a Genotype(...) call: got 'Genotype'"),
    ("PCDARTS = PC_DARTS_cifar", "not a Genotype(...) call: got 'PC_DARTS_cifar'"),
    ("a = b = " + _BODY, "not a Genotype(...) call"),
    ("import os", "not a Genotype(...) call: got 'import os'"),
    (_replace("Genotype(", "Genotype(*x, "), "*arguments"),
    (_replace("Genotype(", "Genotype(**x, "), "**arguments"),
    (_replace("normal_concat=[2, 3, 4, 5], ", ""), "missing field(s) ['normal_concat']"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2])",
     "missing field(s) ['reduce', 'reduce_concat']"),
    (_replace("reduce_concat=", "reduction_concat="), "unknown field 'reduction_concat'"),
    (_replace("Genotype(", "Genotype([('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], "), "field 'normal' given twice"),
    ("Genotype(1, 2, 3, 4, 5)", "got 5 positional arguments"),
    (_replace("('sep_conv_3x3', 0)", "('sep_conv_9x9', 0)"), "normal cell node 2: op 'sep_conv_9x9' is not an op"),
    (_replace("('sep_conv_3x3', 0)", "('none', 0)"), "op 'none' is not an op of the DARTS space"),
    (_replace("('max_pool_3x3', 0)", "('maxpool', 0)"), "reduce cell node 2: op 'maxpool'"),
    (_replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "normal cell node 5: input 5 out of range (0..4)"),
    (_replace("('sep_conv_3x3', 1)", "('sep_conv_3x3', 2)"), "normal cell node 2: input 2 out of range (0..1)"),
    (_replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', -1)"), "input -1 out of range"),
    (_replace("('sep_conv_3x3', 0), ", ""), "'normal' has 7 (op, input) pairs"),
    (_replace("reduce=[", "reduce=[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), "),
     "'reduce' has 11 (op, input) pairs"),
    ("Genotype(normal=[], normal_concat=[], reduce=[], reduce_concat=[])", "'normal' has 0 (op, input) pairs"),
    (_replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', 0, 1)"), "'normal' entry 0 is ('sep_conv_3x3', 0, 1)"),
    (_replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', '0')"), "not an (op, input) pair"),
    (_replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', True)"), "not an (op, input) pair"),
    (_replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', 0.0)"), "not an (op, input) pair"),
    (_replace("('sep_conv_3x3', 0)", "(op, 0)"), "'normal' must be a list of (op, input) pairs written out"),
    (_replace("normal=[", "normal=x + ["), "'normal' must be a list of (op, input) pairs written out"),
    (_replace("reduce=[", "reduce={").replace("], reduce_concat", "}, reduce_concat"), "'reduce' must be a list"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, 6]"),
     "normal cell: concat node 6 out of range (2..5)"),
    (_replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(1, 6)"),
     "reduce cell: concat node 1 out of range (2..5)"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 10**12)"), "must be range(START, STOP)"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 1000000)"), "is out of range"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[]"), "'concat' must list distinct nodes"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 2]"), "'concat' must list distinct nodes"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=['2']"), "'normal_concat' must be a list of node numbers"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=nodes"), "'normal_concat' must be a list of node numbers"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6, 0)"), "must be range(START, STOP)"),
    (_replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(x)"), "must be range(START, STOP)"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2], reduce=[('max_pool_3x3', 0), "
     "('max_pool_3x3', 1)], reduce_concat=[2])\x00", "cannot be parsed"),
])
def test_bad_genotypes_are_one_line(text, fragment):
    with pytest.raises(ArchitectureError) as info:
        parse_genotype(text)
    message = str(info.value)
    assert fragment in message and message.startswith("genotype: ") and "\n" not in message, message


def test_format_refuses_a_node_without_two_entries():
    three = Cell(((("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0)), (("skip_connect", 2),)), (2, 3))
    arch = DartsArchitecture(three, _V2.reduce)
    arch.check()
    with pytest.raises(ArchitectureError) as info:
        format_genotype(arch)
    message = str(info.value)
    assert "normal cell node 2 has 3 entries" in message and "model.darts.derive=darts" in message
    assert "\n" not in message
    one = DartsArchitecture(_V2.normal, Cell(((("max_pool_3x3", 0), ("max_pool_3x3", 1)), (("skip_connect", 2),)),
                                             (2, 3)))
    with pytest.raises(ArchitectureError, match="reduce cell node 3 has 1 entries"):
        format_genotype(one)


def test_format_refuses_another_space():
    class Other:
        def to_dict(self):
            return {"version": 1, "space": "mobile"}

    with pytest.raises(ArchitectureError, match="a 'mobile' architecture has no DARTS genotype"):
        format_genotype(Other())


# ---------------------------------------------------------------------------- the subcommands

def _error_line(capsys):
    """The one stderr line of a failed command (and nothing on stdout)."""
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dso-nas: error: ") and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_import_then_export_a_genotype(tmp_path, capsys):
    out = tmp_path / "sub" / "v2.yaml"
    assert main(["import-genotype", DARTS_V2, "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    arch = DartsArchitecture.from_dict(yaml.safe_load(out.read_text()))
    assert arch == _V2 and arch.meta == {"source": "command line"} and arch.in_channels == 3
    assert [p.name for p in out.parent.iterdir()] == ["v2.yaml"]  # no temporary file left
    assert main(["export-genotype", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == format_genotype(_V2) + "\n"
    assert parse_genotype(printed) == _V2


def test_import_from_a_file_and_from_stdin(tmp_path, capsys, monkeypatch):
    source = tmp_path / "genotype.txt"
    source.write_text("# P-DARTS\n" + PDARTS.replace("), (", "),\n  (") + "\n")
    out = tmp_path / "pdarts.yaml"
    assert main(["import-genotype", f"@{source}", "-o", str(out), "--in-channels", "1"]) == 0
    arch = DartsArchitecture.from_dict(yaml.safe_load(out.read_text()))
    assert arch == parse_genotype(PDARTS, in_channels=1) and arch.meta == {"source": str(source)}
    monkeypatch.setattr("sys.stdin", io.StringIO(NASP))
    out2 = tmp_path / "nasp.yaml"
    assert main(["import-genotype", "-", "-o", str(out2)]) == 0
    arch = DartsArchitecture.from_dict(yaml.safe_load(out2.read_text()))
    assert arch == parse_genotype(NASP) and arch.meta == {"source": "stdin"}
    capsys.readouterr()


def test_import_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "arch.yaml"
    out.write_text("keep me\n")
    assert main(["import-genotype", DARTS_V1, "-o", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{out} exists: add --force to replace it" in line
    assert out.read_text() == "keep me\n"
    assert main(["import-genotype", DARTS_V1, "-o", str(out), "--force"]) == 0
    assert DartsArchitecture.from_dict(yaml.safe_load(out.read_text())) == parse_genotype(DARTS_V1)
    capsys.readouterr()


@pytest.mark.parametrize("genotype, fragment", [
    ("Genotype(normal=[('sep_conv_3x3', 0)]", "genotype: cannot be parsed"),
    (_replace("('sep_conv_3x3', 0)", "('sep_conv_9x9', 0)"), "op 'sep_conv_9x9' is not an op of the DARTS space"),
    (_replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 7)"), "input 7 out of range"),
    (_replace("('sep_conv_3x3', 0), ", ""), "'normal' has 7 (op, input) pairs"),
    (_replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[9]"), "concat node 9 out of range"),
    ("@/nonexistent/genotype.txt", "genotype file not found: /nonexistent/genotype.txt"),
])
def test_import_bad_input_is_one_line_and_writes_nothing(genotype, fragment, tmp_path, capsys):
    out = tmp_path / "arch.yaml"
    assert main(["import-genotype", genotype, "-o", str(out)]) == 2
    assert fragment in _error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_import_bad_in_channels(tmp_path, capsys):
    assert main(["import-genotype", DARTS_V1, "-o", str(tmp_path / "a.yaml"), "--in-channels", "0"]) == 2
    assert "in_channels must be a positive integer" in _error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_another_space_and_bad_files(tmp_path, capsys):
    mobile = os.path.join(ROOT, "experiments", "mobile", "reference", "mobilenet_v2.yaml")
    assert main(["export-genotype", mobile]) == 2
    line = _error_line(capsys)
    assert f"architecture file {mobile} is a space 'mobile' architecture" in line
    missing = str(tmp_path / "missing.yaml")
    assert main(["export-genotype", missing]) == 2
    assert f"architecture file not found: {missing}" in _error_line(capsys)
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: darts\nnormal: [\n")
    assert main(["export-genotype", str(bad)]) == 2
    assert "is not valid YAML" in _error_line(capsys)
    broken = dict(_V2.to_dict())
    broken["normal"] = {"nodes": [[["sep_conv_3x3", 3], ["sep_conv_3x3", 1]]], "concat": [2]}
    bad.write_text(yaml.safe_dump(broken))
    assert main(["export-genotype", str(bad)]) == 2
    assert f"architecture file {bad}: normal cell node 2: input 3 out of range" in _error_line(capsys)


def test_export_refuses_a_cell_not_of_two_per_node(tmp_path, capsys):
    data = _V2.to_dict()
    data["normal"]["nodes"][1].append(["skip_connect", 0])
    path = tmp_path / "derived.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["export-genotype", str(path)]) == 2
    line = _error_line(capsys)
    assert f"architecture file {path}: normal cell node 3 has 3 entries" in line
    assert "model.darts.derive=darts" in line


def test_the_commands_show_help_and_examples(capsys):
    from dso_nas.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
    for name in ("import-genotype", "export-genotype"):
        text = sub.choices[name].format_help()
        assert "examples:" in text and f"dso-nas {name} " in text
    assert "--in-channels" in sub.choices["import-genotype"].format_help()
    assert "--force" in sub.choices["import-genotype"].format_help()
