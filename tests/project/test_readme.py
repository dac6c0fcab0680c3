"""Issue 14: every ```python block of README.md runs as written, so README and code cannot drift.

Issue 28 moved most of the README into the documentation's pages (``docs/*.md``,
``docs/user_guide/*.md``); their blocks run the same way (``docs/scaling.md``'s example is
run by ``tests/deploy/test_distributed.py``).

Each block runs on its own, as a new user pasting it into a fresh interpreter would: a new
Python process started in the repository root, with this checkout's sources first on the path.
All blocks share one feature store directory, so a text encoded by one block is a store hit
for the next (that keeps the cost of several blocks on the same data low).

A block that truly cannot run offline in a few seconds (it needs a GPU or a network) is
skipped by the line ``<!-- readme-test: skip (reason) -->`` directly above its fence; every
skipped block shows up as a skipped test with its line number and reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import needs_default_model

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP_MARKER = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
#: seconds one block may run (a block should take a few seconds; the first one loads torch)
BLOCK_TIMEOUT = 240


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line number of the opening fence in README.md
    code: str
    skip: str | None  # the reason, when a skip marker stands directly above the fence
    file: str = "README.md"  # relative to the repository root


def python_blocks(text: str) -> list[Block]:
    """Every fenced block whose info string is ``python`` (or ``py``), in order.

    Raises ``ValueError`` for an unterminated fence and for a skip marker that does not
    stand directly above a ``python`` fence (a marker that silently skipped nothing, or the
    wrong block, would be worse than none).
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = "readme-test" in line and line.lstrip().startswith("<!--")
        if marker:
            match = SKIP_MARKER.match(line.strip())
            nxt = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if not match or not nxt or nxt.group("info") not in ("python", "py"):
                raise ValueError(
                    f"README.md line {i + 1}: a readme-test marker must read "
                    "`<!-- readme-test: skip (reason) -->` and stand directly above a "
                    "```python fence")
        fence = FENCE.match(line)
        if fence is None:
            i += 1
            continue
        ticks = fence.group("ticks")
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"README.md line {start + 1}: the fence is never closed")
        i += 1  # the closing fence
        if fence.group("info") not in ("python", "py"):
            continue
        prev = SKIP_MARKER.match(lines[start - 1].strip()) if start > 0 else None
        indent = len(fence.group("indent"))
        code = "\n".join(b[indent:] if b[:indent].isspace() else b for b in body)
        blocks.append(Block(start + 1, code + "\n", prev.group("reason") if prev else None))
    return blocks


#: README.md and the documentation's Markdown pages whose blocks run here
DOC_PAGES = [README] + [p for p in sorted((ROOT / "docs").rglob("*.md"))
                        if p.name != "scaling.md" and "auto_examples" not in p.parts]
README_BLOCKS = python_blocks(README.read_text(encoding="utf-8"))
BLOCKS = [Block(b.line, b.code, b.skip, str(page.relative_to(ROOT)))
          for page in DOC_PAGES for b in python_blocks(page.read_text(encoding="utf-8"))]


def test_readme_has_python_blocks():
    assert len(README_BLOCKS) >= 1, "README.md lost its quick start"
    assert len(BLOCKS) >= 8, "the documentation lost its Python examples"
    skipped = [b.line for b in BLOCKS if b.skip]
    # skips are for what cannot run offline; most blocks must run
    assert len(skipped) * 4 <= len(BLOCKS), f"too many skipped README blocks: lines {skipped}"


@pytest.fixture(scope="module")
def readme_store(tmp_path_factory) -> Path:
    """One feature store for all README blocks: repeated texts are store reads."""
    return tmp_path_factory.mktemp("readme-store")


@needs_default_model
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.file}:{b.line}" for b in BLOCKS])
def test_readme_block_runs(block: Block, readme_store: Path, tmp_path: Path):
    if block.skip:
        pytest.skip(f"{block.file} line {block.line}: {block.skip}")
    script = tmp_path / f"readme_block_line_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    env = {**os.environ, "BERTFEAT_CACHE_DIR": str(readme_store), "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join(
               [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    # relative paths such as data/ work as from the repository root, but whatever the block
    # writes (a Parquet export, say) lands in a scratch directory, not in the checkout
    work = tmp_path / "cwd"
    work.mkdir()
    for name in ("data", "examples", "docs"):
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name)
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.file} block at line {block.line} ran longer than {BLOCK_TIMEOUT} s")
    assert done.returncode == 0, (
        f"{block.file} block at line {block.line} failed (exit {done.returncode}):\n"
        f"{done.stderr[-4000:]}")


def test_parser_finds_blocks_and_markers():
    text = "\n".join([
        "intro", "```python", "print(1)", "```",
        "<!-- readme-test: skip (needs a GPU) -->", "```python", "import cuda", "```",
        "```bash", "make test", "```",
        "- item", "  ```python", "  x = 1", "  ```",
    ])
    blocks = python_blocks(text)
    assert [(b.line, b.skip) for b in blocks] == [(2, None), (6, "needs a GPU"), (13, None)]
    assert blocks[0].code == "print(1)\n" and blocks[2].code == "x = 1\n"


@pytest.mark.parametrize("text", [
    "<!-- readme-test: skip (x) -->\n\n```python\npass\n```",   # not directly above
    "<!-- readme-test: skip -->\n```python\npass\n```",         # no reason
    "<!-- readme-test: skip (x) -->\n```bash\nls\n```",         # not a python block
    "```python\npass\n",                                         # never closed
])
def test_parser_rejects_misplaced_markers(text):
    with pytest.raises(ValueError, match="line 1"):
        python_blocks(text)
