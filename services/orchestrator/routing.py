"""Which generation replica takes each call of an episode: the one that holds its prefix.

Where it sits: every step of an episode re-sends its whole context (10k-30k tokens at paper
scale), and vLLM's prefix cache spares the prefill only on the replica that computed that
context before. A ClusterIP Service balances per connection, so an episode's steps wander
between replicas and each move re-prefills the whole episode. `Peers.generation_stub`
asks the process's one `GenerationRouter` for the episode's replica instead.

- Replicas: a list in settings (`START_GENERATION_REPLICAS`), or every address of a headless
  Service's DNS name (`START_GENERATION_DISCOVERY`), looked up again, lazily, on the first
  call after `generation_discovery_interval_s`; neither: `generation_addr` alone.
- `affinity` (the default): rendezvous (highest-random-weight) hashing of the episode id
  over the replicas, with a hash every process computes alike, so every worker sends an
  episode's steps to the same replica, and a replica that comes or goes moves only the
  episodes that hashed to it (1/n of them).
- Saturation: the engine never refuses work (vLLM queues what is over `max_num_seqs`), so
  "full" is judged here: this process has `generation_max_inflight_per_replica` calls in
  flight on the replica, or it answered RESOURCE_EXHAUSTED within `generation_cooldown_s`.
  Then the step spills to the least-loaded other replica (one cache miss, not a queue).
- A replica that answered UNAVAILABLE (loading, its engine died, gone) is passed over for
  `generation_cooldown_s`: its episodes rehash to their next replica in hash order, the
  same one in every process, which is where they stay when the replica leaves DNS.
- `round_robin`: each call to the next replica; the baseline `startctl bench routing`
  measures affinity against.

The router owns the in-flight counts of its process (one router per process and settings:
`shared_router`); its state sits behind one lock, as Celery steps run in threads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import grpc

from services.common.logs import get_logger
from services.common.settings import PeerAddresses
from services.orchestrator.worker_metrics import GENERATION_CALLS
from start.v1 import generation_pb2_grpc

log = get_logger("orchestrator.routing")

Policy = Literal["affinity", "round_robin"]
# How a call reached its replica (the `route` label of start_worker_generation_calls_total).
Route = Literal["own", "spilled", "rehashed", "round_robin"]


@dataclass(frozen=True)
class RoutingConfig:
    """The routing part of `PeerAddresses`, hashable, so one router serves a process."""

    fallback_addr: str
    replicas: tuple[str, ...] = ()
    discovery: str = ""
    policy: Policy = "affinity"
    max_inflight_per_replica: int = 64
    discovery_interval_s: float = 5.0
    cooldown_s: float = 5.0

    @classmethod
    def from_addresses(cls, addresses: PeerAddresses) -> RoutingConfig:
        listed = addresses.generation_replicas
        return cls(
            fallback_addr=addresses.generation_addr,
            replicas=tuple(listed.split(",")) if listed else (),
            discovery=addresses.generation_discovery,
            policy=addresses.generation_routing,
            max_inflight_per_replica=addresses.generation_max_inflight_per_replica,
            discovery_interval_s=addresses.generation_discovery_interval_s,
            cooldown_s=addresses.generation_cooldown_s,
        )


def weight(episode_id: str, replica: str) -> int:
    """The episode's score on a replica; its replica is the highest. blake2b, not hash():
    Python salts str hashes per process, and every worker must agree."""
    digest = hashlib.blake2b(f"{replica}\x00{episode_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranked(episode_id: str, replicas: tuple[str, ...] | list[str]) -> list[str]:
    """Replicas in the episode's order of preference (ties, which 64 bits make rare, by name)."""
    return sorted(replicas, key=lambda r: (weight(episode_id, r), r), reverse=True)


def resolve(target: str) -> tuple[str, ...]:
    """Every address of a DNS name, as host:port, sorted. One family only: a dual-stack
    Service answers each pod twice (A and AAAA), and that is one replica, not two; IPv4
    when there is any."""
    host, _, port = target.rpartition(":")
    infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    v4 = {info[4][0] for info in infos if info[0] == socket.AF_INET}
    if v4:
        return tuple(sorted(f"{ip}:{port}" for ip in v4))
    return tuple(sorted(f"[{info[4][0]}]:{port}" for info in infos if info[0] == socket.AF_INET6))


@dataclass(frozen=True)
class Replica:
    """Where one call goes: the replica's address, its stub, and how it was chosen."""

    addr: str
    stub: generation_pb2_grpc.GenerationServiceStub
    route: Route


@dataclass
class GenerationRouter:
    """Picks a replica per call and counts the calls in flight on each (see the module doc)."""

    config: RoutingConfig
    channel_for: Callable[[str], grpc.Channel]
    resolver: Callable[[str], tuple[str, ...]] = resolve
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _resolving: threading.Lock = field(default_factory=threading.Lock, init=False)
    _replicas: tuple[str, ...] = field(default=(), init=False)
    _resolve_at: float = field(default=0.0, init=False)
    _inflight: dict[str, int] = field(default_factory=dict, init=False)
    _down_until: dict[str, float] = field(default_factory=dict, init=False)
    _busy_until: dict[str, float] = field(default_factory=dict, init=False)
    _stubs: dict[str, generation_pb2_grpc.GenerationServiceStub] = field(default_factory=dict, init=False)
    _turn: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.config.discovery:
            self._replicas = self.config.replicas or (self.config.fallback_addr,)

    def replicas(self) -> tuple[str, ...]:
        """The replicas calls go to now (a DNS name is looked up again once it is due)."""
        if self.config.discovery and self.clock() >= self._resolve_at:
            self._discover()
        return self._replicas or (self.config.fallback_addr,)

    def _discover(self) -> None:
        # One thread looks the name up while the others route on the list they have; the
        # very first look-up is waited for, as there is no list yet.
        if not self._resolving.acquire(blocking=not self._replicas):
            return
        try:
            if self.clock() < self._resolve_at:
                return  # another thread just did it
            try:
                found = self.resolver(self.config.discovery)
            except OSError as exc:
                found = ()
                log.warning("generation discovery failed", name=self.config.discovery, error=str(exc))
            with self._lock:
                self._resolve_at = self.clock() + self.config.discovery_interval_s
                # No answer (no ready pod, a DNS hiccup): keep routing to the last replicas
                # known; with none ever known, to generation_addr.
                if found and found != self._replicas:
                    log.info("generation replicas", name=self.config.discovery, replicas=list(found))
                    self._replicas = found
        finally:
            self._resolving.release()

    @contextlib.contextmanager
    def route(self, episode_id: str) -> Iterator[Replica]:
        """The replica for one call of the episode, counted in flight until the block exits;
        an UNAVAILABLE or RESOURCE_EXHAUSTED from it is remembered (see report)."""
        replica = self._acquire(episode_id)
        try:
            yield replica
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None  # type: ignore[attr-defined]
            if code is not None:
                self.report(replica.addr, code)
            raise
        finally:
            with self._lock:
                self._inflight[replica.addr] -= 1

    def report(self, addr: str, code: grpc.StatusCode) -> None:
        """A replica's answer that says where not to send the next calls for a while:
        UNAVAILABLE (down: its episodes rehash), RESOURCE_EXHAUSTED (full: they spill)."""
        until = self.clock() + self.config.cooldown_s
        with self._lock:
            if code == grpc.StatusCode.UNAVAILABLE:
                self._down_until[addr] = until
            elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                self._busy_until[addr] = until

    def inflight(self, addr: str) -> int:
        with self._lock:
            return self._inflight.get(addr, 0)

    def _acquire(self, episode_id: str) -> Replica:
        replicas = self.replicas()
        with self._lock:
            addr, route = self._choose(episode_id, replicas, self.clock())
            self._inflight[addr] = self._inflight.get(addr, 0) + 1
            stub = self._stubs.get(addr)
            if stub is None:
                stub = self._stubs[addr] = generation_pb2_grpc.GenerationServiceStub(self.channel_for(addr))
        GENERATION_CALLS.labels(replica=addr, route=route).inc()
        return Replica(addr=addr, stub=stub, route=route)

    def _choose(self, episode_id: str, replicas: tuple[str, ...], now: float) -> tuple[str, Route]:
        """Under the lock. With every replica down, the episode's own: its call fails as it
        would have, and the step's retry comes back here."""
        up = [r for r in replicas if self._down_until.get(r, 0.0) <= now] or list(replicas)
        if self.config.policy == "round_robin":
            self._turn += 1
            return up[self._turn % len(up)], "round_robin"
        order = ranked(episode_id, up)
        own = order[0]
        stays: Route = "own" if own == ranked(episode_id, replicas)[0] else "rehashed"
        free = [r for r in order[1:] if not self._saturated(r, now)]
        if not self._saturated(own, now) or not free:
            return own, stays  # all full: moving would only add a cache miss to the wait
        # The least loaded; among equals, the episode's next choice, the same in every process.
        return min(free, key=lambda r: (self._inflight.get(r, 0), order.index(r))), "spilled"

    def _saturated(self, addr: str, now: float) -> bool:
        return (
            self._inflight.get(addr, 0) >= self.config.max_inflight_per_replica or self._busy_until.get(addr, 0.0) > now
        )


@functools.cache
def shared_router(config: RoutingConfig, channel_for: Callable[[str], grpc.Channel]) -> GenerationRouter:
    """The process's router for these settings: every `Peers` of a process shares its
    in-flight counts (one owner), as they share channels."""
    return GenerationRouter(config, channel_for)
