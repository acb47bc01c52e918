"""Who is online: counted connections per specialist or spoke, shared by all hub processes.

One process: in memory. Several (a Redis ``message_queue`` configured): each process keeps its
counts in its own Redis hash that expires unless the process keeps refreshing it, so a process
that dies takes its connections with it after ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any, Protocol


class Presence(Protocol):
    def connected(self, key: str) -> None: ...
    def disconnected(self, key: str) -> None: ...
    def online(self) -> set[str]: ...
    def last_seen(self) -> dict[str, float]: ...
    def heartbeat(self) -> None: ...


class MemoryPresence:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._last_seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def connected(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1
            self._last_seen[key] = time.time()

    def disconnected(self, key: str) -> None:
        with self._lock:
            self._counts[key] -= 1
            if self._counts[key] <= 0:
                del self._counts[key]
            self._last_seen[key] = time.time()

    def online(self) -> set[str]:
        with self._lock:
            return set(self._counts)

    def last_seen(self) -> dict[str, float]:
        with self._lock:
            now = time.time()
            return {**self._last_seen, **{k: now for k in self._counts}}

    def heartbeat(self) -> None:
        return None


class RedisPresence:
    def __init__(self, redis: Any, channel: str, ttl_s: int = 30) -> None:
        self._redis = redis
        self._prefix = f"{channel}:presence:"
        self._key = self._prefix + uuid.uuid4().hex
        self._last_seen_key = f"{channel}:last_seen"
        self._ttl_s = ttl_s

    def connected(self, key: str) -> None:
        pipe = self._redis.pipeline()
        pipe.hincrby(self._key, key, 1)
        pipe.expire(self._key, self._ttl_s)
        pipe.hset(self._last_seen_key, key, time.time())
        pipe.execute()

    def disconnected(self, key: str) -> None:
        pipe = self._redis.pipeline()
        pipe.hincrby(self._key, key, -1)
        pipe.hset(self._last_seen_key, key, time.time())
        pipe.execute()

    def online(self) -> set[str]:
        keys = set()
        for process_key in self._redis.scan_iter(self._prefix + "*"):
            for key, count in self._redis.hgetall(process_key).items():
                if int(count) > 0:
                    keys.add(key.decode() if isinstance(key, bytes) else key)
        return keys

    def last_seen(self) -> dict[str, float]:
        seen = {
            (k.decode() if isinstance(k, bytes) else k): float(v)
            for k, v in self._redis.hgetall(self._last_seen_key).items()
        }
        now = time.time()
        seen.update({k: now for k in self.online()})
        return seen

    def heartbeat(self) -> None:
        now = time.time()
        counts = self._redis.hgetall(self._key)
        pipe = self._redis.pipeline()
        pipe.expire(self._key, self._ttl_s)
        for key, count in counts.items():
            if int(count) > 0:
                pipe.hset(self._last_seen_key, key, now)
        pipe.execute()


def make_presence(message_queue: str, channel: str) -> Presence:
    if message_queue.startswith("redis"):
        import redis

        return RedisPresence(redis.Redis.from_url(message_queue), channel)
    return MemoryPresence()
