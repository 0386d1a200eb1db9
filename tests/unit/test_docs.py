"""The README and docs/ hold together: links resolve, headings nest, nothing is said twice.

The README is the ten-minute introduction; each topic's full text lives once, in docs/
(or bench/). These checks keep it so: a relative link must reach a file (and its
``#anchor`` a heading of that file, as GitHub makes anchors), the README's outline never
skips a level and stays short, and no paragraph of prose stands in two files.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_LINES = 300
#: Prose shorter than this may repeat (a shared sentence, a caption).
MIN_PARAGRAPH_CHARS = 120

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "bench").glob("*.md"))]


def without_code(text: str) -> list[str]:
    """The lines of ``text`` outside fenced code blocks (code lines become blank)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return out


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of each Markdown heading outside code blocks."""
    found = []
    for line in without_code(text):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            found.append((len(m.group(1)), m.group(2)))
    return found


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to -.

    >>> slug("The embedded broker (Tansu, memory storage) is not Apache Kafka")
    'the-embedded-broker-tansu-memory-storage-is-not-apache-kafka'
    >>> slug("At-least-once, end to end; deduplicate by `event_id`")
    'at-least-once-end-to-end-deduplicate-by-event_id'
    """
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link: its text
    title = title.strip().lower()
    title = re.sub(r"[^\w\- ]", "", title)
    return title.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = defaultdict(int)
    out = set()
    for _, title in headings(path.read_text()):
        base = slug(title)
        out.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    for m in re.finditer(r'<a (?:name|id)="([^"]+)"', path.read_text()):
        out.add(m.group(1))
    return out


def links(path: Path) -> list[str]:
    return [m.group(1) for line in without_code(path.read_text()) for m in LINK.finditer(line)]


def paragraphs(text: str) -> list[str]:
    """Prose paragraphs of ``text``: code blocks, tables, headings and HTML comments left
    out, each list item on its own, whitespace and link targets normalised."""
    blocks: list[list[str]] = [[]]
    for line in without_code(re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)):
        stripped = line.strip()
        if not stripped or stripped.startswith(("|", "#")):
            blocks.append([])
        elif re.match(r"^([-*+]|\d+\.)\s", stripped):
            blocks.append([stripped])
        else:
            blocks[-1].append(stripped)
    out = []
    for block in blocks:
        joined = " ".join(block)
        joined = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", joined)
        joined = re.sub(r"^([-*+]|\d+\.)\s+", "", joined)
        joined = re.sub(r"\s+", " ", joined).strip()
        if len(joined) >= MIN_PARAGRAPH_CHARS:
            out.append(joined)
    return out


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_a_heading(path: Path) -> None:
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_is_short_and_its_outline_never_skips_a_level() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    levels = [level for level, _ in headings(text)]
    assert levels[0] == 1 and levels.count(1) == 1, "one title, first"
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, f"a heading jumps from level {before} to {after}"


@pytest.mark.parametrize("path", documents()[1:], ids=lambda p: str(p.relative_to(ROOT)))
def test_each_page_outline_never_skips_a_level(path: Path) -> None:
    levels = [level for level, _ in headings(path.read_text())]
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, f"{path.name}: a heading jumps from {before} to {after}"


def test_no_paragraph_stands_in_two_files() -> None:
    where: dict[str, set[str]] = defaultdict(set)
    for path in documents():
        for paragraph in paragraphs(path.read_text()):
            where[paragraph].add(str(path.relative_to(ROOT)))
    repeated = {p: sorted(files) for p, files in where.items() if len(files) > 1}
    assert not repeated, "\n\n".join(f"{files}: {p[:160]}..." for p, files in repeated.items())


def test_the_checks_see_what_they_check() -> None:
    text = "Intro\n\n```sh\n# not a heading\n```\n\n- item one\n- item two\n\n| a | b |\n"
    assert headings(text) == []
    assert paragraphs("x " * 70) == ["x " * 69 + "x"]
    assert paragraphs("- " + "a" * 130 + "\n- " + "b" * 130) == ["a" * 130, "b" * 130]
    assert paragraphs("See [the docs](docs/x.md) " + "y" * 120) == paragraphs(
        "See [the docs](x.md) " + "y" * 120
    )
