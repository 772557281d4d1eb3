"""The engine: reconciles desired state into Docker through a durable work ledger."""
