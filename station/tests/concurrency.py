"""Races on purpose: work started in several threads at the same instant."""

import threading

from django.db import connection


def run_together(count: int, work) -> list:
    """Run ``work`` in ``count`` threads released at the same instant, each on its own database session."""
    start, results = threading.Barrier(count), []

    def run():
        try:
            start.wait(timeout=30)
            results.append(work())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
