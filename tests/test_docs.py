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
    board = (tmp_path / "leaderboards" / "my_suite.md").read_text()
    assert "| inverse_loss |" in board and "| supervised |" in board
    assert (tmp_path / "results" / "quickstart" / "tuning" / "params.yaml").exists()
