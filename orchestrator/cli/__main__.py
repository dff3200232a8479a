"""``python -m orchestrator.cli``: what ``swarm up --detach`` runs in the background."""

from __future__ import annotations

import sys

from orchestrator.cli.entry import main

sys.exit(main())
