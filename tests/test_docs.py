"""The documentation as users read it: README.md and every docs/*.md page.

- No page narrates how the work was done (CHANGELOG.md holds the history and is exempt).
- Every relative link resolves: the file exists, and an anchor names a heading of the target page
  (GitHub's anchors) or an explicit `<a id>`/`<a name>`.
- docs/cli.md's reference equals `--help` both ways: each documented flag exists, each existing flag
  is documented, for every verify.py subcommand and for the port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
CLI = DOCS / "cli.md"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md")), REPO / "judge" / "README.md"]

# Words about how the project was made: they are wrong the day after they are written, and belong
# in CHANGELOG.md. Bare "round(s)" and "session(s)" are not banned: rounding ("rounds ties to even")
# and ONNX Runtime's sessions are the software's own words; the phrases that date a text are.
NARRATION = [
    (r"\b(this|last|previous|next|earlier|later|current) round(?:'s)?\b", "a round of the work"),
    (r"\b(these|those|earlier|previous|past|later|several|recent|both) rounds\b", "rounds of the work"),
    (r"\b(this|last|previous|next|earlier|later|current) session(?:'s)?\b", "a session of the work"),
    (r"\b(these|those|earlier|previous|past|later|several|recent) sessions\b", "sessions of the work"),
    (r"\b(this|that|the|earlier|previous) issue(?:'s)?\b", "an issue of the work"),
    (r"\bissues?\s*#?\d+\b", "a numbered issue"),  # not another project's (UPSTREAM)
    (r"\bprevious (measurement|attempt|result|figure|table|helper)s?\b", "a previous state"),
    (r"\b(earlier|older|former|superseded) (measurement|figure|number|table)s?\b", "a superseded figure"),
    (r"\b(for now|as of now|until now|up to now|at the moment)\b", "a dated state"),
    (r"\bno longer\b(?! than)", "a change (CHANGELOG.md holds them)"),
    (r"\b(we|we've|we'd|we're|we'll|our|ours|ourselves|my|myself)\b", "first person"),
]
# "pyannote-audio issue 1819": another project's issue tracker, cited
UPSTREAM = re.compile(r"([\w.]+[-/][\w.-]+|pyannote(\.audio)?|ONNX Runtime|onnxruntime|PyTorch|torch|numpy|scipy)\s+$", re.I)
FIRST_PERSON_I = re.compile(r"(?<![\w/.\-'])I(?:'m|'ve|'d|'ll)?(?![\w/.\-])")  # case-sensitive; not I/O
FENCE = re.compile(r"^(```|~~~)")


def _unfenced(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            yield number, line


def _prose(text: str):
    """(line number, line) outside fenced code, inline code spans blanked."""
    for number, line in _unfenced(text):
        yield number, re.sub(r"`[^`]*`", lambda m: " " * len(m.group()), line)


def _page_id(page: Path, root: Path = REPO) -> str:
    return os.path.relpath(page, root)


def narration(text: str) -> list[tuple[int, str, str]]:
    """(line number, words, why) of each narrating phrase in a page's prose; phrases may run across
    a line break."""
    lines = list(_prose(text))
    joined, starts = "", []
    for number, line in lines:
        starts.append((len(joined), number))
        joined += line + " "

    def line_of(offset):
        return max((start, number) for start, number in starts if start <= offset)[1]

    found = []
    for pattern, what in NARRATION:
        for match in re.finditer(pattern, joined, re.IGNORECASE):
            if what.startswith("a numbered issue") and UPSTREAM.search(joined[:match.start()]):
                continue
            found.append((line_of(match.start()), match.group(), what))
    found += [(line_of(m.start()), m.group(), "first person") for m in FIRST_PERSON_I.finditer(joined)]
    return sorted(found)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_pages_do_not_narrate_how_the_work_was_done(page):
    if not page.is_file():
        pytest.skip(f"{_page_id(page)} does not exist")
    text = page.read_text()
    lines = text.splitlines()
    hits = [f"{_page_id(page)}:{number}: {words!r} ({what}): {lines[number - 1].strip()[:120]}"
            for number, words, what in narration(text)]
    assert not hits, f"{len(hits)} narrating word(s):\n" + "\n".join(hits)


def test_narration_patterns_catch_what_they_must_and_spare_the_rest():
    """The list above on sentences: the narrating ones are caught, the software's own words spared."""
    caught = ["Measured this round: 158 s.", "Last round the loop took 9 min.", "the previous session's idle run",
              "I did not do that this round.", "the issue's port/floor", "we tried ONNX Runtime's LSTM",
              "as the issue asks", "see issue 28", "the previous round (3.1)", "an earlier session's port", "The fbank is no longer numpy only.", "for now, CPU only"]
    spared = ["Rust before 1.67 rounds ties up.", "one ONNX Runtime session per model", "rounding once or twice",
              "I/O bound", "a chunk no longer than 10 s", "the previous stage's output", "round trip to the GPU",
              "ONNX Runtime sessions are created once", "MIT licence"]

    assert [s for s in caught if not narration(s)] == []
    assert {s: narration(s) for s in spared if narration(s)} == {}
    # across a line break, and on the right line; code is not prose
    assert narration("Measured on the Intel machine this\nround, 8.5x.\n") == [(1, "this round", "a round of the work")]
    assert narration("```\nI ran this round\n```\nand `this round` in code\n") == []
    assert narration("see pyannote-audio issue 1819 and issue 28\n") == [(1, "issue 28", "a numbered issue")]


# --------------------------------------------------------------------------- links
INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML_LINK = re.compile(r"""<(?:a|img)\s[^>]*?(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but - and _ removed,
    each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # html tags
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)  # _emphasis_, not snake_case
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page has: its headings' (duplicates numbered -1, -2, ...) and explicit ids."""
    found, seen = set(), {}
    text = page.read_text()
    for _, line in _unfenced(text):
        heading = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_anchor(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    found.update(re.findall(r"""<a\s[^>]*?(?:id|name)\s*=\s*["']([^"']+)["']""", text, re.IGNORECASE))
    return found


def _links(page: Path):
    for number, line in _prose(page.read_text()):
        for pattern in (INLINE_LINK, HTML_LINK):
            for match in pattern.finditer(line):
                yield number, match.group(1)
        reference = REFERENCE_LINK.match(line)
        if reference:
            yield number, reference.group(1)


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    broken = []
    for number, target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
            continue  # https:, mailto:, ...: not this repository's
        path, _, anchor = target.partition("#")
        file = (page.parent / unquote(path)).resolve() if path else page
        where = f"{_page_id(page, root)}:{number}: {target}"
        if not file.exists():
            broken.append(f"{where}: no such file {_page_id(file, root)}")
        elif anchor and file.suffix == ".md" and unquote(anchor).lower() not in anchors(file):
            broken.append(f"{where}: no heading with anchor #{anchor} in {_page_id(file, root)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_and_anchors_resolve(page):
    if not page.is_file():
        pytest.skip(f"{_page_id(page)} does not exist")
    broken = broken_links(page)
    assert not broken, f"{len(broken)} broken link(s):\n" + "\n".join(broken)


def test_the_link_checker(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# Title\n\n## verify.py run\n\n## Où `x_y` *z*\n\n## Title\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](sub/b.md) [ok](sub/b.md#verifypy-run) [ok](sub/b.md#où-x_y-z) [ok](sub/b.md#title-1)\n"
                    "[ok](#local) [web](https://example.com/x.md#nothing) `[code](missing.md)`\n"
                    "<a id=\"local\"></a>\n```\n[fenced](missing.md)\n```\n"
                    "[bad](missing.md) [bad](sub/b.md#nope) [bad](#nowhere)\n[ref]: sub/none.md\n")
    broken = broken_links(page, tmp_path)
    assert [line.split(": ")[1] for line in broken] == [
        "missing.md", "sub/b.md#nope", "#nowhere", "sub/none.md"], broken
    assert github_anchor("python -m port / pyannote-port") == "python--m-port--pyannote-port"


# --------------------------------------------------------------------------- the CLI reference
PORT = ("python -m port / pyannote-port", [sys.executable, "-m", "port"])


def _help(command: list[str]) -> str:
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def help_flags(text: str) -> set[str]:
    """The option strings argparse's --help lists (its option lines are indented by two spaces)."""
    flags = set()
    for line in text.splitlines():
        if re.match(r"^ {2}-", line):
            invocation = re.split(r"\s{2,}", line.strip())[0]
            flags.update(part.split()[0] for part in invocation.split(", ") if part.startswith("-"))
    return flags - {"-h", "--help"}


def documented_sections(text: str) -> dict[str, set[str]]:
    """docs/cli.md: {section heading: the flags of its table's first column}."""
    sections, current = {}, None
    for line in text.splitlines():
        heading = re.match(r"^## (.+?)\s*$", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif current and line.startswith("|") and not re.match(r"^\|\s*:?-", line):
            first = line.strip().strip("|").split("|")[0]
            for code in re.findall(r"`([^`]+)`", first):
                token = code.split()[0]
                if token.startswith("-"):
                    sections[current].add(token)
    return sections


def test_the_cli_reference_equals_help_both_ways():
    main_help = _help([sys.executable, str(REPO / "verify.py")])
    commands = re.search(r"\{([\w,-]+)\}", main_help).group(1).split(",")
    expected = {f"verify.py {c}": [sys.executable, str(REPO / "verify.py"), c] for c in commands}
    expected[PORT[0]] = PORT[1]
    sections = documented_sections(CLI.read_text())
    problems = []
    for title, command in expected.items():
        shown = " ".join(["python" if command[0] == sys.executable else command[0]]
                         + [Path(c).name if c.endswith(".py") else c for c in command[1:]]) + " --help"
        if title not in sections:
            problems.append(f"docs/cli.md has no section '## {title}' (for `{shown}`)")
            continue
        actual, documented = help_flags(_help(command)), sections[title]
        problems += [f"docs/cli.md '## {title}' documents {flag}, which `{shown}` does not have"
                     for flag in sorted(documented - actual)]
        problems += [f"`{shown}` has {flag}, which docs/cli.md '## {title}' does not document"
                     for flag in sorted(actual - documented)]
    commands_documented = {t for t in sections if t.startswith("verify.py ")}
    problems += [f"docs/cli.md '## {t}': verify.py has no such command" for t in sorted(commands_documented - set(expected))]
    assert not problems, "\n".join(problems)


def test_the_cli_reference_parser():
    text = ("## verify.py run\n\n| Flag | Default |\n|---|---|\n| `AUDIO ...` | x |\n| `-j N`, `--jobs N` | 1 |\n"
            "| `--dumps DIR` | `dumps/` |\n\n## Exit status\n\n| `--not-a-flag-of-run` | |\n")
    assert documented_sections(text) == {"verify.py run": {"-j", "--jobs", "--dumps"}, "Exit status": {"--not-a-flag-of-run"}}
    assert help_flags("options:\n  -h, --help  show\n  -j JOBS, --jobs JOBS  n\n  --device {auto,cpu}\n"
                      "                        see --other\n") == {"-j", "--jobs", "--device"}
