"""Placeholder replaced below."""
from __future__ import annotations
import argparse
def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    pass
