"""``redis://host:port/db``: one store for a fleet, exact across hosts.

Each operation is one Lua script, so it is atomic on the server and costs one round trip: the
take checks every counter before adding to any; the apply adds to several counters at once.
Counters are Redis integers (INCRBY, exact); Lua compares them as doubles, exact up to 2**53
nano-dollars (about nine million dollars per budget window). Keys expire after their
window, so nothing needs pruning; the expiry is set when a counter is created (its new value
equals the delta), which saves a command per counter on every charge. Short socket timeouts
keep a dead server from stalling calls; redis-py's pool notices a fork and reconnects in the
child. Operation ids are keys of their own with a TTL (``SET NX EX``), checked and set inside the
same script as the counters they guard, so a script that ran while its caller timed out is not
applied again when the caller replays it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from costspan.budgets.store import OP_TTL_S, Claim, Giveback, Increment, Take, TakeResult

_PREFIX = "costspan:"
_OP_PREFIX = "costspan:op:"
_TIMEOUT_S = 0.5

_TAKE = """
local n, has_op = #KEYS - tonumber(ARGV[1]), ARGV[1] == '1'
local values = {}
for i = 1, n do
  values[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
for i = 1, n do
  local delta, limit = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  if values[i] >= limit or values[i] + delta > limit then
    table.insert(values, 1, i)
    return values
  end
end
for i = 1, n do
  if ARGV[3 * i - 1] ~= '0' and redis.call('INCRBY', KEYS[i], ARGV[3 * i - 1]) == tonumber(ARGV[3 * i - 1]) then
    redis.call('EXPIREAT', KEYS[i], ARGV[3 * i + 1])
  end
end
if has_op then
  redis.call('SET', KEYS[#KEYS], '1', 'EX', ARGV[#ARGV])
end
table.insert(values, 1, 0)
return values
"""

_APPLY = """
local has_op, has_give, m = ARGV[1] == '1', ARGV[2] == '1', tonumber(ARGV[3])
local first = 1
if has_op then first = first + 1 end
if has_give then first = first + 1 end
local out = {}
if has_op and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[#ARGV]) then
  for i = 0, m - 1 do
    out[i + 1] = tonumber(redis.call('GET', KEYS[first + i]) or '0')
  end
  return out
end
if has_give and redis.call('DEL', KEYS[first - 1]) == 1 then
  for j = first + m, #KEYS do
    local at = 4 + 2 * (j - first)
    redis.call('DECRBY', KEYS[j], ARGV[at])
    if redis.call('TTL', KEYS[j]) == -1 then
      redis.call('EXPIREAT', KEYS[j], ARGV[at + 1])
    end
  end
end
for i = 0, m - 1 do
  out[i + 1] = redis.call('INCRBY', KEYS[first + i], ARGV[4 + 2 * i])
  if out[i + 1] == tonumber(ARGV[4 + 2 * i]) then
    redis.call('EXPIREAT', KEYS[first + i], ARGV[5 + 2 * i])
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
    outcome_known = False
    """A script may run on the server after its caller timed out: a replay needs the operation id."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S)
        self._take = self._client.register_script(_TAKE)
        self._apply = self._client.register_script(_APPLY)
        self._claim = self._client.register_script(_CLAIM)

    def take(self, takes: Sequence[Take], op: str | None = None) -> TakeResult:
        keys = [_PREFIX + t.key for t in takes]
        args: list[Any] = [1 if op is not None else 0]
        for take in takes:
            args.extend((take.delta, take.limit, take.expires_at))
        if op is not None:
            keys.append(_OP_PREFIX + op)
            args.append(OP_TTL_S)
        reply = self._take(keys=keys, args=args)
        return TakeResult(int(reply[0]) - 1, tuple(int(v) for v in reply[1:]))

    def apply(
        self, increments: Sequence[Increment], op: str | None = None, giveback: Giveback | None = None
    ) -> tuple[int, ...]:
        keys: list[str] = []
        if op is not None:
            keys.append(_OP_PREFIX + op)
        if giveback is not None:
            keys.append(_OP_PREFIX + giveback.take_op)
        args: list[Any] = [1 if op is not None else 0, 1 if giveback is not None else 0, len(increments)]
        given = giveback.taken if giveback is not None else ()
        for increment in (*increments, *given):
            keys.append(_PREFIX + increment.key)
            args.extend((increment.delta, increment.expires_at))
        args.append(OP_TTL_S)
        return tuple(int(v) for v in self._apply(keys=keys, args=args))

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
