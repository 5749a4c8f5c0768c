"""The run store's Lua scripts, kept as ``.lua`` files beside this module.

Every write to a run's state is one of them (``copy_core.runs.store`` registers them), so each
step is atomic. Scripts that may end a run are run with ``finalize.lua`` (the shared
``maybe_finalize`` and friends) in front of them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def script(name: str, with_finalize: bool = False) -> str:
    """The source of ``lua/<name>.lua``, after ``lua/finalize.lua`` if ``with_finalize``."""
    body = _read(name)
    return _read("finalize") + body if with_finalize else body


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()
