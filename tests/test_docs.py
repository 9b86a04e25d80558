"""The documentation site builds with `mkdocs build --strict` (every link and image resolves, every API
reference imports), and its generated pages say what the code says."""

import re
import subprocess
import sys
from pathlib import Path

from helpers import clean_env

from bavae import zoo

ROOT = Path(__file__).resolve().parents[1]


def test_site_builds_strict_with_generated_zoo_table_and_cli(tmp_path):
    site = tmp_path / "site"
    env = clean_env(NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    zoo_page = (site / "zoo" / "index.html").read_text()
    for name in zoo.list_models():
        assert f"<code>{name}</code>" in zoo_page, name  # every record is a row of the generated table
        record = zoo.model_info(name)
        if "fid" in record.metrics:
            assert f"{record.metrics['fid']:.2f}" in zoo_page, name
    cli_page = (site / "cli" / "index.html").read_text()
    for command in (
        "list",
        "info",
        "sample",
        "reconstruct",
        "interpolate",
        "encode",
        "decode",
        "eval",
        "push",
        "train",
    ):
        assert f"bavae {command} --help" in cli_page, command
    api_page = (site / "api" / "index.html").read_text()
    assert "bavae.eval.evaluate" in api_page and "bavae.model.BAVAE" in api_page
    # Every example the quick start lists exists, and every example is listed.
    index = (ROOT / "docs" / "index.md").read_text()
    listed = set(re.findall(r"`examples/(\w+\.py)`", index))
    assert listed == {p.name for p in (ROOT / "examples").glob("*.py")}


def test_readme_zoo_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert zoo.zoo_table() in readme, "run python benchmarks/sync_readme.py after changing a zoo record"
