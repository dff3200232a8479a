"""What runs inside one agent process (the loop and its backends)."""
