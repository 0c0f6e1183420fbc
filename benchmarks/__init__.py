"""Benchmarks of sqlxmq_py against plain-psycopg baselines and peer queues.

Run ``python -m benchmarks --help``; ``benchmarks/README.md`` says what each row measures.
"""
