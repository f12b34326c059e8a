"""Click parameter types shared by the command lines, so a bad flag is one usage line (exit
status 2), never a traceback further in."""

from __future__ import annotations

import math
from typing import Any

import click

__all__ = ["PORT", "FiniteFloat"]


class FiniteFloat(click.FloatRange):
    """A float range that also refuses ``inf`` and ``nan`` (``FloatRange`` lets ``nan``
    through: every comparison with it is false)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


#: a TCP port to listen on; 0 lets the system pick a free one
PORT = click.IntRange(0, 65_535)
