"""A throwaway PostgreSQL database per test session, so parallel runs never share state:
the benchmarks' (one copy), named jobwarden_test_…"""

from __future__ import annotations

from contextlib import AbstractContextManager

from benchmarks._support import postgres_database


def postgres_test_database(server_url: str) -> AbstractContextManager[str]:
    return postgres_database(server_url, prefix="jobwarden_test")
