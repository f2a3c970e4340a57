"""Run ASGI apps for real (uvicorn in a thread, on a free port) for tests that need live HTTP.

Separate processes (web, worker) are `devtools.processes`'s."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import uvicorn

from devtools.processes import free_port


@contextmanager
def serve(app, port: int | None = None):
    """Serve `app` until the block ends; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1, lifespan="on",
                                           # as the Procfile: the app decides whom to trust (TRUSTED_PROXY_HOPS)
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
