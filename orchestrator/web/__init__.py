"""The HTTP API and the dashboard page (``swarm serve``, ``[supervisor] http_port``).

Nothing here is imported by the item commands: Starlette and uvicorn load only when a
server starts.
"""
