"""Offline stand-ins for Calendly (`sandbox.calendly`) and Stripe (`sandbox.stripe`).

Each is its own FastAPI app, run as its own process (`python -m sandbox.calendly --port 8001`,
`python -m sandbox.stripe --port 8002`) and speaking the provider's wire format, so the system runs
offline end to end. They import nothing from `core` or `webhook_service`; the only thing the
project takes from them is `sandbox.calendly.identities` (the demo data points at the stand-in).
"""
