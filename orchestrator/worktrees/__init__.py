"""Git worktrees with their own ports, database and environment, for people
(``swarm worktree``) and for agent groups (``worktree = "per-item" | "per-agent"``).

    settings    [worktrees] of swarm.toml, resolved to paths
    git         the ``git`` command, with git's own lock contention retried
    alloc       ports and database names claimed through the store; databases
    envfile     the worktree's .env
    lifecycle   create, remove, merge; the states a worktree goes through
    status      what list and dashboard show
"""
