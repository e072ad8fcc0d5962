"""Task functions and a database router for the Django Tasks tests: a worker
process imports them by dotted path, so they live in an importable package."""
