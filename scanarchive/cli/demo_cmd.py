"""The demo verb: a self-contained tour on synthetic notes."""

from __future__ import annotations

import argparse
from pathlib import Path

from scanarchive import demo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="run a demo on synthetic notes (makes its own archive)")
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("scanarchive-demo"),
        help="folder for the demo archive and scans (default ./scanarchive-demo)",
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from scanarchive.cli.main import main

    return demo.run(args.dir, main)
