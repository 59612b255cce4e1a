"""Budgets and quotas: configuration, calendar windows, shared stores, enforcement and status.

``BudgetEngine.from_settings`` is the entry point; the runtime asks it before each call
(``precheck``) and tells it after (``charge``). See ``engine.py`` for how exactness is kept.
"""

from costspan.budgets.engine import BudgetEngine, Reservation
from costspan.budgets.status import BudgetStatus

__all__ = ["BudgetEngine", "BudgetStatus", "Reservation"]
