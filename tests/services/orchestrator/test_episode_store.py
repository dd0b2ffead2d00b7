"""The episode store on a real Redis: a step is saved once, submissions are idempotent."""

from __future__ import annotations

import redis

from services.common.episode import new_episode
from services.orchestrator.store import EpisodeStore, episode_key
from start.v1 import common_pb2 as pb


def make_store(redis_url: str, ttl: int = 0) -> EpisodeStore:
    return EpisodeStore(redis.Redis.from_url(redis_url), finished_ttl_s=ttl)


def test_a_step_run_twice_is_saved_once(redis_url: str) -> None:
    store = make_store(redis_url)
    episode = new_episode(pb.Problem(question="1+1?"), pb.EpisodeOptions())
    assert store.create(episode)
    first, second = store.load(episode.id), store.load(episode.id)
    first.spans.add(kind=pb.SPAN_KIND_MODEL, text="first")
    first.steps = 1
    second.spans.add(kind=pb.SPAN_KIND_MODEL, text="second")
    second.steps = 1
    assert store.save(first, expected_step=0)
    assert not store.save(second, expected_step=0), "the re-run of step 0 must not overwrite it"
    stored = store.load(episode.id)
    assert (stored.steps, stored.spans[-1].text) == (1, "first")


def test_creating_an_existing_episode_keeps_the_first(redis_url: str) -> None:
    store = make_store(redis_url)
    episode = new_episode(pb.Problem(question="first"), pb.EpisodeOptions(), episode_id="same-id-store")
    assert store.create(episode)
    assert not store.create(new_episode(pb.Problem(question="second"), pb.EpisodeOptions(), "same-id-store"))
    assert store.load("same-id-store").problem.question == "first"


def test_queued_marker_only_moves_forward(redis_url: str) -> None:
    store = make_store(redis_url)
    episode = new_episode(pb.Problem(question="q"), pb.EpisodeOptions())
    store.create(episode)
    assert store.queued_step(episode.id) == -1
    store.mark_queued(episode.id, 3)
    store.mark_queued(episode.id, 2)
    assert store.queued_step(episode.id) == 3


def test_finished_episodes_expire_and_running_ones_do_not(redis_url: str) -> None:
    store = make_store(redis_url, ttl=3600)
    episode = new_episode(pb.Problem(question="q"), pb.EpisodeOptions())
    store.create(episode)
    episode.status, episode.steps = pb.EPISODE_STATUS_RUNNING, 1
    store.save(episode, expected_step=0)
    assert store.client.ttl(episode_key(episode.id)) == -1
    episode.status, episode.steps = pb.EPISODE_STATUS_DONE, 2
    store.save(episode, expected_step=1)
    assert 0 < store.client.ttl(episode_key(episode.id)) <= 3600
