"""``redis://host:port/db``: one store for a fleet, exact across hosts.

Each operation is one Lua script, so it is atomic on the server and costs one round trip: the
take checks every counter before adding to any; the apply adds to several counters at once.
Counters are Redis integers (INCRBY, exact); Lua compares them as doubles, exact up to 2**53
nano-dollars (about nine million dollars per budget window). Keys expire after their
window, so nothing needs pruning; the expiry is set when a counter is created (its new value
equals the delta), which saves a command per counter on every charge. Short socket timeouts
keep a dead server from stalling calls; redis-py's pool notices a fork and reconnects in the
child.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from costspan.budgets.store import Claim, Increment, Take, TakeResult

_PREFIX = "costspan:"
_TIMEOUT_S = 0.5

_TAKE = """
local values = {}
for i = 1, #KEYS do
  values[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
for i = 1, #KEYS do
  local delta, limit = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  if values[i] >= limit or values[i] + delta > limit then
    table.insert(values, 1, i)
    return values
  end
end
for i = 1, #KEYS do
  if ARGV[3 * i - 2] ~= '0' and redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2]) == tonumber(ARGV[3 * i - 2]) then
    redis.call('EXPIREAT', KEYS[i], ARGV[3 * i])
  end
end
table.insert(values, 1, 0)
return values
"""

_APPLY = """
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  if out[i] == tonumber(ARGV[2 * i - 1]) then
    redis.call('EXPIREAT', KEYS[i], ARGV[2 * i])
  end
end
return out
"""

_CLAIM = """
local won = {}
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX') then
    redis.call('EXPIREAT', KEYS[i], ARGV[i])
    table.insert(won, i - 1)
  end
end
return won
"""


class RedisStore:
    backend = "redis"

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S)
        self._take = self._client.register_script(_TAKE)
        self._apply = self._client.register_script(_APPLY)
        self._claim = self._client.register_script(_CLAIM)

    def take(self, takes: Sequence[Take]) -> TakeResult:
        args: list[Any] = []
        for take in takes:
            args.extend((take.delta, take.limit, take.expires_at))
        reply = self._take(keys=[_PREFIX + t.key for t in takes], args=args)
        return TakeResult(int(reply[0]) - 1, tuple(int(v) for v in reply[1:]))

    def apply(self, increments: Sequence[Increment]) -> tuple[int, ...]:
        args: list[Any] = []
        for increment in increments:
            args.extend((increment.delta, increment.expires_at))
        return tuple(int(v) for v in self._apply(keys=[_PREFIX + i.key for i in increments], args=args))

    def claim(self, claims: Sequence[Claim]) -> tuple[int, ...]:
        reply = self._claim(keys=[_PREFIX + c.key for c in claims], args=[c.expires_at for c in claims])
        return tuple(int(v) for v in reply)

    def read(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        return [int(v or 0) for v in self._client.mget([_PREFIX + k for k in keys])]

    def scan(self, prefix: str) -> dict[str, int]:
        pattern = _PREFIX + re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in self._client.scan_iter(pattern, count=500)]
        values = self.read([k[len(_PREFIX) :] for k in keys])
        return {key[len(_PREFIX) :]: value for key, value in zip(keys, values, strict=True)}

    def close(self) -> None:
        self._client.close()
