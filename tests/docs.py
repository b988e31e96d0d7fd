"""The shell commands the docs promise, as the tests run them.

A fenced block right after a line ``<!-- tested -->`` (invisible on GitHub) is
run by tests/test_docs.py; ``<!-- tested: <tag> -->`` marks a block that a
test needing more than a shell runs itself (``hugo``: the Hugo browser test).
A marked block must work exactly as written.
"""

import re
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- tested(?::\s*(?P<tag>[\w-]+))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")


@dataclass(frozen=True, slots=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    tag: str  # "" for plain shell blocks
    text: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(BASE_DIR)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every marked fenced block of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        if not marker:
            i += 1
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not fence:
            raise ValueError(
                f"{path}:{i + 1}: '<!-- tested -->' not followed by a fence"
            )
        body = []
        j = i + 2
        while j < len(lines) and lines[j].strip() != fence["fence"]:
            body.append(lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 2}: unclosed fence")
        found.append(
            Block(
                path=path,
                line=i + 2,
                tag=marker["tag"] or "",
                text="\n".join(body) + "\n",
            )
        )
        i = j + 1
    return found


def documents() -> list[Path]:
    return [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]


def tagged(tag: str) -> list[Block]:
    return [block for path in documents() for block in blocks(path) if block.tag == tag]
