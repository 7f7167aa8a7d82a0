"""The verification service: FastAPI in front of the engine (README.md, "Three doors").

Specs are accepted over HTTP, checked against the limits before they are queued, stored in
SQLite, and verified by worker processes; progress streams as server-sent events.
"""
