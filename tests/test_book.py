"""The committed notebooks carry the outputs of their full run: figures, no errors, no smoke numbers."""

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(BOOK)))
def test_notebook_has_full_run_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    text = json.dumps(outputs)
    assert outputs, "no outputs committed: run the notebook with DISLIB_BUDGET=full and commit it"
    assert not any(o["output_type"] == "error" for o in outputs), "an error output is committed"
    assert not re.search(r"budget\W{0,6}smoke", text, re.I), "outputs come from a smoke run"
    assert "image/png" in text, "no figure in the committed outputs"
    assert len(path.read_bytes()) < 3_000_000, "keep committed outputs small (PNG figures, no big logs)"


def test_every_page_is_in_the_table_of_contents():
    toc = (BOOK.parent / "_toc.yml").read_text()
    files = sorted(p for p in BOOK.rglob("*") if p.suffix in (".md", ".ipynb") and ".ipynb_checkpoints" not in p.parts)
    pages = [p for p in files if not p.name.startswith("_")]
    missing = [str(p.relative_to(BOOK.parent).with_suffix("")) for p in pages
               if str(p.relative_to(BOOK.parent).with_suffix("")) not in toc]
    assert not missing, f"pages not in _toc.yml: {missing}"
    # a file named _NAME is a fragment that pages include ({include}); each must be included somewhere
    texts = "\n".join(p.read_text() for p in pages)
    unused = [p.name for p in files if p.name.startswith("_") and f"{p.name}\n" not in texts.replace("```", "\n")]
    assert not unused, f"fragments no page includes: {unused}"
