"""costspan budgets."""
