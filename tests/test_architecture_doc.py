"""``docs/architecture.md`` matches the tree: its generated parts (the layer picture, every
module) are what ``tools/architecture.py`` writes now."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import architecture  # noqa: E402 - a tool script (tools/architecture.py)
from importgraph import modules  # noqa: E402

from dso_nas.errors import UserError  # noqa: E402


def test_the_document_is_current():
    with open(architecture.DOC, encoding="utf-8") as f:
        text = f.read()
    assert architecture.render(text) == text, "docs/architecture.md is stale: run 'make architecture'"


def test_every_module_is_listed():
    with open(architecture.DOC, encoding="utf-8") as f:
        text = f.read()
    missing = [m for m, (path, _) in modules().items()
               if f"| `{os.path.relpath(path, ROOT).replace(os.sep, '/')}` |" not in text]
    assert not missing


def test_a_stale_document_fails_the_check_in_one_line(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "architecture.md"
    stale.write_text("# x\n<!-- generated: layers -->\nold\n<!-- end: layers -->\n"
                     "<!-- generated: modules -->\n<!-- end: modules -->\n", encoding="utf-8")
    monkeypatch.setattr(architecture, "DOC", str(stale))
    assert architecture.main(["--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the tree" in err[0]
    assert "old" in stale.read_text(encoding="utf-8")
    assert architecture.main([]) == 0
    assert architecture.main(["--check"]) == 0
    assert "dso_nas/run/search.py" in stale.read_text(encoding="utf-8")


@pytest.mark.parametrize("text, message", [
    ("<!-- generated: layers -->\n<!-- end: layers -->\n", "no markers for the generated part(s) modules"),
    ("<!-- generated: layers -->\n<!-- end: layers -->\n<!-- generated: modules -->\n<!-- end: modules -->\n"
     "<!-- generated: other -->\n<!-- end: other -->\n", "unknown generated part 'other'"),
])
def test_markers_are_checked(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        architecture.render(text)
