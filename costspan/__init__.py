"""costspan: what your LLM calls cost, while they run, and a stop before you overspend."""

from __future__ import annotations

from costspan.errors import BudgetExceededError, ConfigError

__version__ = "0.1.0"

__all__ = ["BudgetExceededError", "ConfigError", "__version__"]
