"""Runtime helpers shared by the Lambda handlers (settings, observability, clients)."""
