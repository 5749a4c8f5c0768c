"""docs/options.md, generated from ``copy_control.option_spec``: ``make docs`` writes it.

A test fails when the checked-in file differs from what this module renders, so the reference
cannot fall behind the flags and arguments it describes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from copy_control.option_spec import GROUPS, Option, in_group

TITLE = "# Copy options: the CLI and the operator"
INTRO = """\
Every option of a copy, under the same name for `s3fanout copy` (as a flag) and for
`S3CrossAccountCopyOperator` (as a keyword argument). Generated from
`copy_control/option_spec.py` by `make docs`; a test keeps it current.

Sizes take bytes or a unit (`8MiB`, `256MB`, `1GiB`); times are ISO 8601 (UTC without a zone);
KEY=VALUE flags repeat (`--tag a=1 --tag b=2`), where the operator takes a dict; glob flags
repeat, where the operator takes a string or a list. T: a template field of the operator
(rendered by Jinja per task instance).

Options that only one side has: the CLI's `SOURCE DEST`, `--recursive`, `--redis-url`,
`--endpoint-url`, `--region`, `--run-id` and `--json` (`s3fanout copy --help`); the operator's
locations (`source_s3_url`, `source_bucket`...), connections, deferral and polling
arguments ([airflow.md](airflow.md#parameters)).
"""


def render() -> str:
    """The whole of docs/options.md."""
    parts = [TITLE, "", INTRO]
    for group in GROUPS:
        parts += [f"## {group.title[0].upper()}{group.title[1:]}", ""]
        if group.description:
            parts += [f"{group.description[0].upper()}{group.description[1:]}.", ""]
        parts += ["| CLI | operator | T | default | meaning |", "|---|---|---|---|---|"]
        parts += [_row(option) for option in in_group(group)]
        parts.append("")
    return "\n".join(parts)


def _row(option: Option) -> str:
    absent = option.default is None or (option.kind == "bool" and option.default is False)
    default = "-" if absent else f"`{option.shown_default()}`"
    meaning = option.help
    if option.choices:
        meaning += ": " + ", ".join(f"`{choice}`" for choice in option.choices)
    templated = "T" if option.templated else ""
    escaped = meaning.replace("|", "\\|")
    return f"| `{option.cli_flag}` | `{option.name}` | {templated} | {default} | {escaped} |"


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/options.md")
    target.write_text(render())


if __name__ == "__main__":
    main()
