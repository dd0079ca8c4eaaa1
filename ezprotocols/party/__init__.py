"""Command line: ``python -m ezprotocols.party {demo,serve,query,validate,keygen}``.

``demo`` runs both parties locally on the shipped MNIST model and prints the
accuracy, the time and the bytes moved; ``serve`` (P0, model owner) and
``query``/``validate`` (P1, data owner) run the two sides over the network.

Modules: :mod:`.cli` (parser, entry point, keygen), :mod:`.serve`, :mod:`.client`
(query, validate), :mod:`.demo`, :mod:`.common` (exit codes, output, input checks).
"""
from .cli import build_parser, main
from .common import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_USAGE, CliError

__all__ = ["main", "build_parser", "CliError", "EXIT_FAIL", "EXIT_USAGE", "EXIT_INTERRUPTED"]
