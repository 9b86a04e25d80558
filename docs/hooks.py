"""MkDocs hooks: pages that are generated from the code, so they cannot drift from it.

* ``<!-- zoo-table -->`` becomes :func:`bavae.zoo.zoo_table` (the records: names, metrics, sizes);
* ``<!-- cli-help -->`` becomes the ``--help`` of every ``bavae`` command, from click itself;
* the bundled models' sample grids (``weights/<name>/*.png``) are served at ``img/zoo/<name>/``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for png in sorted((ROOT / "weights").glob("*/*.png")):
        files.append(File.generated(config, f"img/zoo/{png.parent.name}/{png.name}", abs_src_path=str(png)))
    return files


def _cli_help() -> str:
    import click

    from bavae.cli import cli

    ctx = click.Context(cli, info_name="bavae")
    blocks = ["```text", "$ bavae --help", cli.get_help(ctx), "```"]
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        sub = click.Context(command, info_name=name, parent=ctx)
        blocks += ["", f"### bavae {name}", "", "```text", f"$ bavae {name} --help", command.get_help(sub), "```"]
    return "\n".join(blocks)


def on_page_markdown(markdown, page, config, files):
    if "<!-- zoo-table -->" in markdown:
        from bavae.zoo import zoo_table

        markdown = markdown.replace("<!-- zoo-table -->", zoo_table())
    if "<!-- cli-help -->" in markdown:
        markdown = markdown.replace("<!-- cli-help -->", _cli_help())
    return markdown
