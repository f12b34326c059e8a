"""The ``candlekeeper`` console script: the command line, or one clear line saying which extra
to install.

The library (``pip install candlekeeper``) needs no terminal UI, Prometheus or database
drivers; the command line runs the service, which uses all of them (``pip install
'candlekeeper[service]'``). A bare install that runs ``candlekeeper`` gets this message and exit
status 2 instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Final

#: modules of the ``service`` extra
SERVICE_MODULES: Final = ("rich", "prometheus_client", "asyncpg", "nats")


def main() -> None:
    try:
        from candlekeeper.cli import main as cli_main
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in SERVICE_MODULES:
            raise
        print(f"candlekeeper: the command line needs the service extra (missing module "
              f"{root!r}): pip install 'candlekeeper[service]'", file=sys.stderr)
        sys.exit(2)
    cli_main()
