"""The ``budgets:``, ``quotas:`` and ``alerts:`` sections, validated into :class:`Rule` objects.

Every problem is a :class:`ConfigError` naming the file, the budget (``budgets.research-monthly``,
or ``budgets[2]`` before a name is known) and the key, raised at start-up: a typo in a limit must
not turn into a silently unenforced budget.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from costspan.budgets.rules import MATCH_KEYS, PER_KEYS, REQUESTS, TOKENS, USD, Condition, Rule
from costspan.budgets.windows import WEEKDAYS, WindowSpec
from costspan.errors import ConfigError, check_keys
from costspan.money import MAX_NANOS, nanos_to_usd, usd_to_nanos
from costspan.settings import Settings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@ -]*$")
_COMMON_KEYS = {"name", "match", "per", "enforce", "thresholds", "timezone"}
_BUDGET_KEYS = _COMMON_KEYS | {"limit_usd", "window", "week_start", "reserve", "reserve_output_tokens"}
_QUOTA_LIMITS = {
    "requests_per_minute": (REQUESTS, "minute"),
    "requests_per_day": (REQUESTS, "day"),
    "tokens_per_minute": (TOKENS, "minute"),
    "tokens_per_day": (TOKENS, "day"),
}
_QUOTA_KEYS = _COMMON_KEYS | set(_QUOTA_LIMITS)
_ALERT_KEYS = {"thresholds", "warning", "critical", "exceeded"}
BUDGET_WINDOWS = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class Levels:
    """Utilization at which a budget's status turns ``warning``, ``critical``, ``exceeded``."""

    warning: float = 0.75
    critical: float = 0.9
    exceeded: float = 1.0

    def status(self, utilization: float) -> str:
        if utilization >= self.exceeded:
            return "exceeded"
        if utilization >= self.critical:
            return "critical"
        if utilization >= self.warning:
            return "warning"
        return "ok"


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    rules: tuple[Rule, ...] = ()
    levels: Levels = Levels()
    fail_closed: bool = False


class _Where:
    """Builds the key part of error messages for one entry of a section."""

    def __init__(self, source: str, section: str, index: int, entry: Mapping[str, Any]) -> None:
        name = entry.get("name")
        self.source = source
        self.label = f"{section}.{name}" if isinstance(name, str) and name else f"{section}[{index}]"

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, f"{self.label}.{key}", problem)


def parse(settings: Settings) -> BudgetsConfig:
    """Validate the three sections of ``settings``; an empty config when none is present."""
    source = settings.source
    levels, thresholds = _alerts(settings.section("alerts"), source)
    rules: list[Rule] = []
    names: set[str] = set()
    for section, build in (("budgets", _budget), ("quotas", _quota)):
        entries = settings.section(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ConfigError(source, section, "expected a list of entries")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ConfigError(source, f"{section}[{index}]", "expected a mapping")
            built = build(_Where(source, section, index, entry), entry, settings.timezone, thresholds)
            if built[0].name in names:
                problem = "duplicate name: every budget and quota needs its own"
                raise ConfigError(source, f"{section}.{built[0].name}.name", problem)
            names.add(built[0].name)
            rules.extend(built)
    fail_closed = settings.section("fail_closed")
    if fail_closed is not None and not isinstance(fail_closed, bool):
        raise ConfigError(source, "fail_closed", f"expected true or false, got {fail_closed!r}")
    return BudgetsConfig(tuple(rules), levels, bool(fail_closed))


def _alerts(section: Any, source: str) -> tuple[Levels, tuple[float, ...]]:
    if section is None:
        levels = Levels()
        return levels, (levels.warning, levels.critical, levels.exceeded)
    if not isinstance(section, dict):
        raise ConfigError(source, "alerts", "expected a mapping")
    check_keys(source, "alerts", section, _ALERT_KEYS)
    defaults = Levels()
    levels = Levels(
        *(
            _fraction(section.get(name, getattr(defaults, name)), source, f"alerts.{name}")
            for name in ("warning", "critical", "exceeded")
        )
    )
    if not levels.warning <= levels.critical <= levels.exceeded:
        raise ConfigError(source, "alerts", "levels must satisfy warning <= critical <= exceeded")
    if "thresholds" in section:
        thresholds = _thresholds(section["thresholds"], source, "alerts.thresholds")
    else:
        thresholds = (levels.warning, levels.critical, levels.exceeded)
    return levels, thresholds


def _fraction(value: Any, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10:
        raise ConfigError(source, key, f"expected a fraction of the limit such as 0.9, got {value!r}")
    return float(value)


def _thresholds(value: Any, source: str, key: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(source, key, f"expected a list of fractions such as [0.5, 0.9, 1.0], got {value!r}")
    return tuple(sorted({_fraction(v, source, key) for v in value}))


def _common(where: _Where, entry: Mapping[str, Any], thresholds: tuple[float, ...]) -> dict[str, Any]:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise where.error("name", f"expected a name of letters, digits and - _ . : / @, got {name!r}")
    enforce = entry.get("enforce", False)
    if not isinstance(enforce, bool):
        raise where.error("enforce", f"expected true or false, got {enforce!r}")
    per = entry.get("per")
    if per is not None and per not in PER_KEYS:
        raise where.error("per", f"expected one of {', '.join(PER_KEYS)}, got {per!r}")
    own = entry.get("thresholds")
    return {
        "name": name,
        "conditions": _match(where, entry.get("match")),
        "per": per,
        "enforce": enforce,
        "thresholds": thresholds if own is None else _thresholds(own, where.source, f"{where.label}.thresholds"),
    }


def _match(where: _Where, value: Any) -> tuple[Condition, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise where.error("match", f"expected a mapping of {', '.join(MATCH_KEYS)} to values")
    conditions = []
    for key, wanted in value.items():
        check_keys(where.source, f"{where.label}.match", {key: wanted}, MATCH_KEYS)
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise where.error(f"match.{key}", f"expected a name or a list of names, got {wanted!r}")
        conditions.append(Condition.of(key, tuple(values)))
    return tuple(conditions)


def _zone(where: _Where, entry: Mapping[str, Any], default: ZoneInfo) -> ZoneInfo:
    value = entry.get("timezone")
    if value is None:
        return default
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise where.error("timezone", f"unknown time zone {value!r}") from exc


def _budget(where: _Where, entry: Mapping[str, Any], zone: ZoneInfo, thresholds: tuple[float, ...]) -> list[Rule]:
    check_keys(where.source, where.label, entry, _BUDGET_KEYS)
    common = _common(where, entry, thresholds)
    window = entry.get("window")
    if window not in BUDGET_WINDOWS:
        raise where.error("window", f"expected one of {', '.join(BUDGET_WINDOWS)}, got {window!r}")
    week_start = entry.get("week_start", "monday")
    if not isinstance(week_start, str) or week_start.lower() not in WEEKDAYS:
        raise where.error("week_start", f"expected a day name such as monday or sunday, got {week_start!r}")
    if "week_start" in entry and window != "week":
        raise where.error("week_start", "only meaningful with window: week")
    reserve = entry.get("reserve", False)
    if not isinstance(reserve, bool):
        raise where.error("reserve", f"expected true or false, got {reserve!r}")
    if reserve and not common["enforce"]:
        raise where.error("reserve", "reserve refuses calls, so it needs enforce: true")
    cap = entry.get("reserve_output_tokens")
    if cap is not None and (not reserve or isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
        raise where.error("reserve_output_tokens", f"expected a positive token count with reserve: true, got {cap!r}")
    spec = WindowSpec(window, _zone(where, entry, zone), WEEKDAYS.index(week_start.lower()))
    return [
        Rule(
            kind="budget",
            unit=USD,
            limit=_usd(where, entry.get("limit_usd")),
            window=spec,
            reserve=reserve,
            reserve_output_tokens=cap,
            **common,
        )
    ]


def _usd(where: _Where, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise where.error("limit_usd", f"expected an amount in US dollars such as 50 or 0.25, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise where.error("limit_usd", f"expected an amount in US dollars, got {value!r}") from exc
    if not amount.is_finite() or amount <= 0:
        raise where.error("limit_usd", f"must be a positive amount, got {value!r}")
    if amount > nanos_to_usd(MAX_NANOS):
        raise where.error("limit_usd", f"must be at most {nanos_to_usd(MAX_NANOS)} (a 64-bit count of nano-dollars)")
    nanos = usd_to_nanos(amount)
    if nanos == 0:  # a zero limit would refuse every call and divide by zero in status
        raise where.error("limit_usd", f"{value!r} is below the smallest amount costspan counts, $0.000000001")
    return nanos


def _quota(where: _Where, entry: Mapping[str, Any], zone: ZoneInfo, thresholds: tuple[float, ...]) -> list[Rule]:
    check_keys(where.source, where.label, entry, _QUOTA_KEYS)
    common = _common(where, entry, thresholds)
    # Providers reset their daily quotas at UTC midnight: the quota's own zone, not the budgets'.
    quota_zone = _zone(where, entry, ZoneInfo("UTC"))
    rules = []
    for key, (unit, window) in _QUOTA_LIMITS.items():
        if key not in entry:
            continue
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_NANOS:
            raise where.error(key, f"must be a positive whole number up to {MAX_NANOS}, got {value!r}")
        rules.append(Rule(kind="quota", unit=unit, limit=value, window=WindowSpec(window, quota_zone), **common))
    if not rules:
        raise where.error("requests_per_day", f"a quota needs at least one of {', '.join(_QUOTA_LIMITS)}")
    return rules
