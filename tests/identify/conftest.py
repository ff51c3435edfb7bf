"""Fixtures for the detector tests: a small hand-built portfolio (``tests.seed.Book``) whose
``frames()`` are shaped like load_frames'."""

from __future__ import annotations

import pytest
from tests.seed import Book


@pytest.fixture
def book() -> Book:
    return Book()
