"""Loaded by every Python subprocess of the test suite (via PYTHONPATH): no network."""

from __future__ import annotations

from netblock_impl import install

install()
