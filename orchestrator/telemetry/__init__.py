"""Telemetry: spans for every operation (``tracing``, ``traced_store``), the span file
(``spanfile``, ``jsonl``, ``reader``, ``archive``), and what is computed from it
(``stats``, ``health``, ``metrics``, ``diagrams``). Importing this package is free; the
OpenTelemetry SDK loads only when a process turns tracing on."""
