"""Episode-affine routing of generation calls (services/orchestrator/routing.py): fast, no engine.

Channels are real gRPC channels (they connect only when a call is made); the one call made
here goes to a closed loopback port, so the UNAVAILABLE it gets is gRPC's own. The clock is
the router's own seam, so cooldowns pass without sleeping.
"""

from __future__ import annotations

import collections
import contextlib
import subprocess
import sys

import grpc
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.common.channels import channel
from services.common.settings import PeerAddresses
from services.orchestrator.peers import Peers
from services.orchestrator.routing import GenerationRouter, RoutingConfig, ranked, resolve
from start.v1 import common_pb2 as pb
from start.v1 import generation_pb2
from startctl.processes import free_port

THREE = ("10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051")
EPISODES = [f"episode-{i}" for i in range(3000)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def router(replicas: tuple[str, ...] = THREE, clock: Clock | None = None, **config: object) -> GenerationRouter:
    return GenerationRouter(
        RoutingConfig(fallback_addr="127.0.0.1:50051", replicas=replicas, **config),  # type: ignore[arg-type]
        channel_for=channel,
        clock=clock or Clock(),
    )


def owner(r: GenerationRouter, episode_id: str) -> str:
    with r.route(episode_id) as replica:
        return replica.addr


def test_episodes_spread_evenly_over_the_replicas() -> None:
    r = router()
    counts = collections.Counter(owner(r, e) for e in EPISODES)
    assert set(counts) == set(THREE)
    for n in counts.values():
        assert abs(n - len(EPISODES) / 3) < 0.1 * len(EPISODES) / 3, counts


def test_every_step_of_an_episode_goes_to_the_same_replica() -> None:
    r = router()
    for e in EPISODES[:200]:
        first = owner(r, e)
        assert all(owner(r, e) == first for _ in range(5))


def test_the_hash_is_the_same_in_every_process() -> None:
    """Two workers must agree on an episode's replica: no per-process salt (hash() has one)."""
    here = [ranked(e, THREE)[0] for e in EPISODES[:50]]
    script = (
        "from services.orchestrator.routing import ranked;"
        f"print([ranked(f'episode-{{i}}', {THREE!r})[0] for i in range(50)])"
    )
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "random"}
    )
    assert other.stdout.strip() == str(here)


def test_a_new_replica_takes_only_its_share_of_episodes() -> None:
    before = {e: ranked(e, THREE)[0] for e in EPISODES}
    four = (*THREE, "10.0.0.4:50051")
    after = {e: ranked(e, four)[0] for e in EPISODES}
    moved = [e for e in EPISODES if before[e] != after[e]]
    # Only episodes the new replica takes move (about 1/4); none moves between old ones.
    assert all(after[e] == "10.0.0.4:50051" for e in moved)
    assert abs(len(moved) / len(EPISODES) - 0.25) < 0.03
    # And a replica that goes away moves only its own episodes.
    two = THREE[:2]
    gone = {e: ranked(e, two)[0] for e in EPISODES}
    assert all(gone[e] == before[e] for e in EPISODES if before[e] != THREE[2])


def _spill_count(replica: str) -> float:
    value = REGISTRY.get_sample_value("start_worker_generation_calls_total", {"replica": replica, "route": "spilled"})
    return value or 0.0


def test_a_saturated_replica_spills_to_the_least_loaded_and_the_episode_comes_back() -> None:
    r = router(max_inflight_per_replica=2)
    episode = EPISODES[0]
    own, second, third = ranked(episode, THREE)
    # Another episode that hashes to `second` keeps one call there: `third` is less loaded.
    busy_elsewhere = next(e for e in EPISODES if ranked(e, THREE)[0] == second)
    with contextlib.ExitStack() as calls:
        assert calls.enter_context(r.route(busy_elsewhere)).addr == second
        # Under the limit, the episode stays home.
        assert calls.enter_context(r.route(episode)).route == "own"
        assert calls.enter_context(r.route(episode)).addr == own
        assert r.inflight(own) == 2
        spills_before = _spill_count(third)
        spilled = calls.enter_context(r.route(episode))
        assert (spilled.addr, spilled.route) == (third, "spilled")
        assert _spill_count(third) == spills_before + 1
    # The calls are over: nothing in flight, and the episode's next step is home again.
    assert all(r.inflight(addr) == 0 for addr in THREE)
    with r.route(episode) as back:
        assert (back.addr, back.route) == (own, "own")


def test_when_every_replica_is_full_the_episode_waits_at_home() -> None:
    r = router(max_inflight_per_replica=1)
    episode = EPISODES[1]
    with contextlib.ExitStack() as calls:
        for e in EPISODES:
            if all(r.inflight(a) >= 1 for a in THREE):
                break
            calls.enter_context(r.route(e))
        with r.route(episode) as replica:
            assert (replica.addr, replica.route) == (ranked(episode, THREE)[0], "own")


def test_resource_exhausted_counts_as_full_for_the_cooldown() -> None:
    clock = Clock()
    r = router(clock=clock, cooldown_s=5.0)
    episode = EPISODES[2]
    own = ranked(episode, THREE)[0]
    r.report(own, grpc.StatusCode.RESOURCE_EXHAUSTED)
    with r.route(episode) as replica:
        assert replica.route == "spilled" and replica.addr != own
    clock.now += 5.1
    assert owner(r, episode) == own


def test_a_replica_that_answers_unavailable_is_rehashed_around() -> None:
    """A real call to a replica that is gone: gRPC's UNAVAILABLE steers the episode to its
    next replica in hash order (the same in every process) until the cooldown ends."""
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    alive = f"127.0.0.1:{free_port()}"
    episode = next(e for e in EPISODES if ranked(e, (dead, alive))[0] == dead)
    peers = Peers(PeerAddresses(generation_replicas=f"{dead},{alive}", generation_cooldown_s=60), timeout_s=5)
    request = generation_pb2.GenerateRequest(prompt_token_ids=[1, 2, 3], sampling=pb.SamplingParams(max_tokens=1))
    with pytest.raises(grpc.RpcError) as failed, peers.generation_stub(episode) as stub:
        stub.Generate(request, timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert peers.router.inflight(dead) == 0
    with peers.router.route(episode) as replica:
        assert (replica.addr, replica.route) == (alive, "rehashed")
    # Only that replica's episodes moved: one that hashes to `alive` stays there as "own".
    other = next(e for e in EPISODES if ranked(e, (dead, alive))[0] == alive)
    with peers.router.route(other) as replica:
        assert (replica.addr, replica.route) == (alive, "own")


def test_an_unavailable_replica_comes_back_after_the_cooldown() -> None:
    clock = Clock()
    r = router(clock=clock, cooldown_s=5.0)
    episode = EPISODES[3]
    own, second, _ = ranked(episode, THREE)
    r.report(own, grpc.StatusCode.UNAVAILABLE)
    assert owner(r, episode) == second
    clock.now += 5.1
    assert owner(r, episode) == own


def test_with_every_replica_down_the_call_goes_home_and_fails_there() -> None:
    r = router()
    for addr in THREE:
        r.report(addr, grpc.StatusCode.UNAVAILABLE)
    assert owner(r, EPISODES[4]) == ranked(EPISODES[4], THREE)[0]


def test_round_robin_takes_turns() -> None:
    r = router(policy="round_robin")
    seen = [owner(r, EPISODES[0]) for _ in range(6)]
    assert sorted(seen[:3]) == sorted(THREE) and seen[3:] == seen[:3]


def test_without_replicas_everything_goes_to_generation_addr() -> None:
    peers = Peers(PeerAddresses(generation_addr="127.0.0.1:50999"), timeout_s=5)
    assert peers.router.replicas() == ("127.0.0.1:50999",)
    with peers.router.route("any") as replica:
        assert (replica.addr, replica.route) == ("127.0.0.1:50999", "own")


def test_discovery_resolves_a_real_name_to_its_addresses() -> None:
    assert resolve("localhost:50051") == ("127.0.0.1:50051",)
    r = GenerationRouter(
        RoutingConfig(fallback_addr="generation:50051", discovery="localhost:50051"), channel_for=channel
    )
    assert owner(r, "episode") == "127.0.0.1:50051"


def test_discovery_is_looked_up_again_when_due_and_rebalances() -> None:
    clock = Clock()
    answers = [THREE[:2], THREE]
    looked_up: list[str] = []

    def dns(name: str) -> tuple[str, ...]:
        looked_up.append(name)
        return answers[min(len(looked_up), len(answers)) - 1]

    r = GenerationRouter(
        RoutingConfig(fallback_addr="generation:50051", discovery="generation-headless:50051", discovery_interval_s=5),
        channel_for=channel,
        resolver=dns,
        clock=clock,
    )
    assert r.replicas() == THREE[:2]
    assert r.replicas() == THREE[:2] and len(looked_up) == 1  # not due yet: no look-up
    clock.now += 5
    assert r.replicas() == THREE
    assert looked_up == ["generation-headless:50051"] * 2


def test_a_name_that_does_not_resolve_falls_back_to_the_last_known_replicas() -> None:
    clock = Clock()
    answers: list[tuple[str, ...] | OSError] = [THREE, OSError("no such host")]

    def dns(name: str) -> tuple[str, ...]:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, OSError):
            raise answer
        return answer

    r = GenerationRouter(
        RoutingConfig(fallback_addr="generation:50051", discovery="x:1"), channel_for=channel, resolver=dns, clock=clock
    )
    assert r.replicas() == THREE
    clock.now += 10
    assert r.replicas() == THREE
    # A name that never resolved: generation_addr (the ClusterIP Service in a cluster).
    never = GenerationRouter(
        RoutingConfig(fallback_addr="generation:50051", discovery="no-such-host.invalid:50051"), channel_for=channel
    )
    assert never.replicas() == ("generation:50051",)


@pytest.mark.parametrize(
    "settings",
    [
        {"generation_replicas": "10.0.0.1"},
        {"generation_replicas": "10.0.0.1:50051,"},
        {"generation_replicas": "10.0.0.1:0"},
        {"generation_replicas": "http://10.0.0.1:50051"},
        {"generation_replicas": "10.0.0.1:50051,10.0.0.1:50051"},
        {"generation_discovery": "generation-headless"},
        {"generation_replicas": "10.0.0.1:50051", "generation_discovery": "generation-headless:50051"},
        {"generation_routing": "random"},
        {"generation_max_inflight_per_replica": 0},
    ],
)
def test_malformed_routing_settings_are_rejected(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="generation_"):
        PeerAddresses(**settings)


def test_replica_lists_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("START_GENERATION_REPLICAS", " 127.0.0.1:50051, [::1]:50061 ")
    monkeypatch.setenv("START_GENERATION_ROUTING", "round_robin")
    config = RoutingConfig.from_addresses(PeerAddresses())
    assert config.replicas == ("127.0.0.1:50051", "[::1]:50061")
    assert config.policy == "round_robin"
