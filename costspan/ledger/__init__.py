"""costspan ledger."""
