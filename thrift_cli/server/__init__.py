"""`thrift serve`: the web dashboard and the multi-tenant cache API (FastAPI).

A shell, like the CLI and the TUI: the core never imports it. auth.py says whose a key is;
schemas.py holds the strict request bodies; engine.py the caches and the concurrency
model; app.py the routes; dashboard.py and static/ the page at `/`; command.py is what
`thrift serve` runs (uvicorn).
"""
