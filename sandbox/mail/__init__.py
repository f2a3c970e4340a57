"""A local mail catcher: an SMTP server that keeps what it receives, and pages to read it.

`python -m sandbox.mail --smtp-port 8025 --web-port 8003`. `make run` points the web service and the
worker at it (SMTP_URL=smtp://127.0.0.1:8025), so every confirmation, reminder and refund notice the
system sends can be read at http://127.0.0.1:8003/. Like the other stand-ins it imports nothing from
the project. Messages live in memory, bounded in count, size and total bytes (the oldest go first).
"""
