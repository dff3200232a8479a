"""LLM-assisted coordination: a model picks the next item for an agent and analyses
the queue, answering as JSON against a pydantic schema; anything but a valid, timely
answer falls back to the plain behaviour (priority order, no analysis)."""
