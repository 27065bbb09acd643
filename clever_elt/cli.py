"""The `clever-elt` command: argument parsing only; each subcommand calls into its own module."""

from __future__ import annotations

import argparse
import sys

SETTINGS_HELP = """\
settings (environment variables):
  CLEVER_API_TOKEN      district bearer token; unset = run against the built-in simulator
  CLEVER_API_BASE_URL   default https://api.clever.com/v3.1 (plain http only for loopback)
  CLEVER_ELT_DATA_DIR   where the lake and warehouse.duckdb live (default: data)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clever-elt",
        description="Keep an analytics copy of a Clever district roster, with full history.",
        epilog=SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="one incremental sync: extract, load, transform, checks",
        epilog=SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.set_defaults(handler=_run)

    demo = commands.add_parser(
        "demo-server",
        help="serve the built-in Clever simulator",
        description="Serve the built-in Clever simulator until Ctrl-C or SIGTERM. Prints "
        "CLEVER_API_BASE_URL=... and CLEVER_API_TOKEN=... on stdout once it listens.",
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8765, help="0 = any free port")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--scale", default="demo", help="tiny, demo, or a number of events")
    demo.add_argument("--token", default="DEMO_TOKEN")
    demo.add_argument("--rate-limit", type=int, default=1200, help="requests per minute")
    demo.add_argument(
        "--previous-attributes-at",
        choices=("data", "top"),
        default="data",
        help="data = event.data.previous_attributes (real traffic); top = the spec's place",
    )
    faults = demo.add_argument_group("faults (fractions of API requests, seeded)")
    faults.add_argument("--fault-429", type=float, default=0.0, metavar="R")
    faults.add_argument("--fault-5xx", type=float, default=0.0, metavar="R")
    faults.add_argument("--fault-slow", type=float, default=0.0, metavar="R")
    faults.add_argument("--fault-slow-seconds", type=float, default=2.0, metavar="S")
    faults.add_argument("--fault-truncated", type=float, default=0.0, metavar="R")
    faults.add_argument("--fault-seed", type=int, default=0, metavar="N")
    faults.add_argument(
        "--fault-504-large-page",
        type=float,
        default=0.0,
        metavar="R",
        help="fraction of requests with limit >= 5000 answered 504 (gateway timeout)",
    )
    demo.set_defaults(handler=_demo_server)
    return parser


def _run(args: argparse.Namespace) -> int:
    from clever_elt.run import main as run_main

    return run_main(args)


def _demo_server(args: argparse.Namespace) -> int:
    from clever_elt.simulator.server import main as demo_main

    return demo_main(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
