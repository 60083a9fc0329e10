"""The documentation's links to files of the repository (figures, scripts) point at files that
are committed: a figure referred to but never added shows as a broken image on GitHub."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "experiments/README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)\)")  # [text](target) and ![alt](target)


def tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        pytest.skip("not a git checkout")
    return set(out.stdout.splitlines())


def local_links(doc: str) -> list[str]:
    """The repository paths `doc` links to (web addresses left out), relative to the root."""
    base = (ROOT / doc).parent
    return [str((base / t).resolve().relative_to(ROOT)) for t in LINK.findall((ROOT / doc).read_text())
            if "://" not in t and not t.startswith("mailto:")]


def test_link_pattern_finds_images_and_links():
    assert LINK.findall("![a](../docs/x.png) and [b](c/d.py) not [e] (f)") == ["../docs/x.png", "c/d.py"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_linked_file_is_committed(doc):
    files = tracked()
    links = local_links(doc)
    assert links, f"{doc} links to no file: the pattern no longer matches its links"
    missing = [t for t in links if t not in files]
    assert not missing, f"{doc} links to files that are not committed: {missing}"
