"""Benchmarks of the web service's webhook ingest (see bench/README.md).

    .venv/bin/python -m bench.webhook_ingest --db sqlite,postgres --concurrency 1,16,64
    .venv/bin/python -m bench.scale_out --processes 1,2,4
"""
