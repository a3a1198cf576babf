"""The documentation cannot drift: its reference page is what the registries generate, the site builds strictly
(no broken link, no page outside the nav), and every command block of "getting started" works."""
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SKIP = "<!-- not run by the tests:"


def test_the_reference_page_is_what_the_registries_generate():
    generated = subprocess.run([sys.executable, "-m", "mtlbench.cli", "list", "--markdown"], capture_output=True,
                               text=True, check=True, timeout=120, env={**os.environ, "MTLBENCH_PLUGINS": ""}).stdout
    committed = (REPO / "docs" / "reference.md").read_text()  # (a fresh process: no test's registrations)
    assert committed == generated, "regenerate it: mtlbench list --markdown > docs/reference.md"
    assert "### `jtr`" in committed and "| `c_dist` | `4.0` |" in committed


def test_the_site_builds_strictly(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"  # a test dependency: bash tools/install.sh --dev
    done = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "index.html").exists()


def test_the_readme_stays_short_and_points_into_the_docs():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPO / link).exists(), link


def command_blocks(page: Path) -> list[tuple[str, bool]]:
    """(block, run by the tests) for every bash block of a page, in order."""
    text = page.read_text()
    return [(match.group(2), not match.group(1)) for match in
            re.finditer(r"(<!-- not run by the tests:[^>]*-->\n)?```bash\n(.*?)```", text, re.S)]


def test_every_command_block_of_getting_started_works(tmp_path):
    blocks = command_blocks(REPO / "docs" / "getting-started.md")
    assert sum(run for _, run in blocks) == 4 and sum(not run for _, run in blocks) == 3
    (tmp_path / "suites").symlink_to(REPO / "suites")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MTLBENCH_PLUGINS", None)
    for block, run in blocks:
        if not run:
            continue
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{block}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    board = (tmp_path / "results" / "my_suite" / "leaderboard" / "my_suite.md").read_text()
    assert "| inverse_loss |" in board and "| supervised |" in board
    assert (tmp_path / "results" / "quickstart" / "tuning" / "params.yaml").exists()


def test_the_tuning_pages_search_spaces_are_what_the_registries_declare():
    code = "from mtlbench.reference import spaces_table; print('\\n'.join(spaces_table()))"
    generated = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                               env={**os.environ, "MTLBENCH_PLUGINS": ""}).stdout
    page = (REPO / "docs" / "tuning.md").read_text()
    block = re.search(r"<!-- generated from the registries[^\n]*\n(.*?)<!-- end of the generated table -->", page, re.S)
    assert block and block.group(1) == generated, "regenerate docs/tuning.md's table: mtlbench.reference.spaces_table"


def code_lines(page: Path) -> list[str]:
    """The lines of a page's code: fenced blocks and inline spans (a table's escaped pipe unescaped)."""
    text = page.read_text()
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", prose)
    return [line.replace("\\|", "|") for part in [*fenced, *spans] for line in part.splitlines()]


def documented_commands() -> list[tuple[str, str]]:
    """(page, command line) for every `mtlbench SUBCOMMAND ...` the README and docs/ show, cut at a shell
    operator or a comment."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    found = []
    for page in pages:
        for line in code_lines(page):
            starts = r"(?:^|&&|;|\||\$\(|\()\s*(?:[A-Z_]+=\S*\s+)*(?:\S*/)?mtlbench ([a-z].*)"  # a shell command
            for match in re.finditer(starts, line):
                found.append((page.name, re.split(r"\s(?:\||&&|;|#|>)\s?", match.group(1))[0]))
    return found


def test_every_documented_command_flag_and_choice_is_one_the_parser_has():
    import argparse

    from mtlbench.cli import parser
    from mtlbench.leaderboard.formats import FORMATS

    def subparsers(node: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        actions = [a for a in node._actions if isinstance(a, argparse._SubParsersAction)]
        return actions[0].choices if actions else {}

    commands = documented_commands()
    assert len(commands) > 50  # the scan finds the pages' commands
    for page, command in commands:
        words = command.split()
        node, name = parser(), "mtlbench"
        while words and words[0] in subparsers(node):
            node, name = subparsers(node)[words[0]], f"{name} {words[0]}"
            words = words[1:]
        assert name != "mtlbench", f"{page}: `mtlbench {command}`: no such command"
        options = node._option_string_actions
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command):
            assert flag in options, f"{page}: `{name}` has no option {flag} (`mtlbench {command}`)"
            choices = options[flag].choices
            value = re.search(rf"{flag}[ =]([\w,.-]+)", command)
            if choices and value and value.group(1).isidentifier():
                assert value.group(1) in choices, f"{page}: `mtlbench {command}`: {value.group(1)} for {flag}"
        for value in re.findall(r"--format[ =]([\w,]+)", command):
            assert set(value.split(",")) <= set(FORMATS), f"{page}: `mtlbench {command}`: --format {value}"


def test_each_command_of_the_readme_is_explained_on_the_pages_it_links():
    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `mtlbench ")]
    assert len(rows) >= 10
    for row in rows:
        pages = {page: (REPO / page).read_text() for page in re.findall(r"\]\((docs/[^)#]+)", row)}
        for name in re.findall(r"`mtlbench ([a-z]+)", row.split(" | ")[0]):
            assert any(f"mtlbench {name}" in text for text in pages.values()), f"{', '.join(pages)}: no {name}"
