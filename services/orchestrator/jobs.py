"""Jobs: a problem set x an arm x options x samples per problem, each (problem, sample) one episode.

A job's durable record is its results directory (results.py): manifest, problems, Parquet
parts. Redis holds only what is in flight, in one hash per job (`start:job:<id>`):

    spec        the static `start.v1.Job` (arm, samples, effective options, results URL...)
    status      running | cancelling | cancelled | done
    total       episodes of the job (problems x samples); cursor: the next one to admit
    admitted    episodes created so far; done / failed / cancelled: finished, each counted
                once, in the save that finished it (store.py); correct, tokens, tool_calls
    written     episodes written to the results; seq: the next results part number

plus the finished-not-yet-written set, the written bitmap and the claimed batches (key
names in store.py). The controller (controller.py) admits episodes up to a bound in
flight, writes finished ones to Parquet, re-queues stranded steps and closes the job.

Ids: a job is `job-<16 hex>`, derived from its idempotency key when it has one, so the same
key is the same job; its episodes are `<job id>-p<problem index>-s<sample index>`, so
admitting one twice creates it once. Episode (problem p, sample s) has the flat index
p * samples + s, the bit it owns in the written bitmap.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

import redis

from services.orchestrator import store as keys
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb

RUNNING, CANCELLING, CANCELLED, DONE = "running", "cancelling", "cancelled", "done"
STATUS = {
    RUNNING: opb.JOB_STATUS_RUNNING,
    CANCELLING: opb.JOB_STATUS_CANCELLING,
    CANCELLED: opb.JOB_STATUS_CANCELLED,
    DONE: opb.JOB_STATUS_DONE,
}
ARM_NAMES = {opb.ARM_GREEDY: "greedy", opb.ARM_HINT_INFER: "hint-infer", opb.ARM_SAMPLE: "sample"}
_COUNTERS = ("total", "cursor", "admitted", "done", "failed", "cancelled", "correct", "tokens", "tool_calls", "written")

# KEYS: job key, jobs zset, active set; ARGV: id, spec, total, problems, now.
_CREATE_JOB = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'status', 'running', 'total', ARGV[3], 'problems', ARGV[4],
           'cursor', 0, 'admitted', 0, 'done', 0, 'failed', 0, 'cancelled', 0, 'correct', 0,
           'tokens', 0, 'tool_calls', 0, 'written', 0, 'seq', 0, 'created', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""

# KEYS: job key; ARGV: expected cursor, new cursor. Moves the admission cursor forward once.
_ADVANCE = """
if tonumber(redis.call('HGET', KEYS[1], 'cursor')) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2])
return 1
"""

# KEYS: job key, finished set, batches hash; ARGV: most episodes in one batch.
# The oldest claimed batch not yet committed (a writer died while writing it), else a new
# batch of finished episodes under the next part number. Returns {seq, ids...} or nil.
_CLAIM = """
local pending = redis.call('HKEYS', KEYS[3])
if #pending > 0 then
  local oldest = pending[1]
  for _, seq in ipairs(pending) do if tonumber(seq) < tonumber(oldest) then oldest = seq end end
  local ids = cjson.decode(redis.call('HGET', KEYS[3], oldest))
  table.insert(ids, 1, oldest)
  return ids
end
local ids = redis.call('SPOP', KEYS[2], ARGV[1])
if #ids == 0 then return nil end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1) - 1
redis.call('HSET', KEYS[3], seq, cjson.encode(ids))
table.insert(ids, 1, tostring(seq))
return ids
"""

# KEYS: job key, batches hash, written bitmap, then the batch's episode keys;
# ARGV: seq, then the batch's flat indexes. The batch is in the results: mark each episode
# written and let it leave Redis.
_COMMIT = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
for i = 4, #KEYS do
  redis.call('SETBIT', KEYS[3], ARGV[i - 2], 1)
  redis.call('DEL', KEYS[i])
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'written', #KEYS - 3)
return 1
"""


def job_id_for(idempotency_key: str) -> str:
    if not idempotency_key:
        return f"job-{uuid.uuid4().hex[:16]}"
    return f"job-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]}"


def episode_id_for(job_id: str, problem_index: int, sample_index: int) -> str:
    return f"{job_id}-p{problem_index}-s{sample_index}"


def parse_episode_id(episode_id: str) -> tuple[str, int, int] | None:
    """(job id, problem index, sample index) of a job's episode id, else None."""
    head, _, sample = episode_id.rpartition("-s")
    job_id, _, problem = head.rpartition("-p")
    if not job_id.startswith("job-") or not problem.isdigit() or not sample.isdigit():
        return None
    return job_id, int(problem), int(sample)


@dataclass(frozen=True)
class Batch:
    seq: int
    episode_ids: list[str]


class JobStore:
    """Blocking access to jobs in Redis (the front door calls it from a thread)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._create = client.register_script(_CREATE_JOB)
        self._advance = client.register_script(_ADVANCE)
        self._claim = client.register_script(_CLAIM)
        self._commit = client.register_script(_COMMIT)

    def create(self, job: opb.Job) -> bool:
        """Store a new job (its static spec; counters at zero); False when the id exists."""
        spec = opb.Job()
        spec.CopyFrom(job)
        spec.ClearField("counts")
        args = [job.id, spec.SerializeToString(), job.counts.episodes, job.counts.problems, job.created_unix]
        return bool(self._create(keys=[keys.job_key(job.id), keys.JOBS, keys.ACTIVE_JOBS], args=args))

    def restore(self, job: opb.Job, written_flat_indexes: list[int], seq: int, counts: dict[str, int]) -> None:
        """Rebuild a job's Redis state from its results (Redis lost it): what is written
        stays written and is never run again."""
        self.create(job)
        pipe = self.client.pipeline()
        for index in written_flat_indexes:
            pipe.setbit(keys.job_written_key(job.id), index, 1)
        pipe.hset(keys.job_key(job.id), mapping={**counts, "seq": seq, "admitted": counts.get("written", 0)})
        pipe.execute()

    def get(self, job_id: str) -> opb.Job | None:
        fields = self.client.hgetall(keys.job_key(job_id))
        return None if not fields else compose(fields)

    def status(self, job_id: str) -> str | None:
        value = self.client.hget(keys.job_key(job_id), "status")
        return None if value is None else value.decode()

    def set_status(self, job_id: str, status: str, finished_unix: float = 0.0) -> None:
        mapping: dict = {"status": status}
        if finished_unix:
            mapping["finished"] = finished_unix
        self.client.hset(keys.job_key(job_id), mapping=mapping)

    def cancel(self, job_id: str) -> None:
        """Stop admitting; running episodes stop at their next step (tasks.py)."""
        if self.status(job_id) == RUNNING:
            self.set_status(job_id, CANCELLING)

    def list_ids(self, offset: int, count: int) -> list[str]:
        """Job ids, newest first."""
        return [i.decode() for i in self.client.zrevrange(keys.JOBS, offset, offset + count - 1)]

    def active_ids(self) -> list[str]:
        return sorted(i.decode() for i in self.client.smembers(keys.ACTIVE_JOBS))

    def deactivate(self, job_id: str) -> None:
        self.client.srem(keys.ACTIVE_JOBS, job_id)

    def counters(self, job_id: str) -> dict[str, int]:
        values = self.client.hmget(keys.job_key(job_id), *_COUNTERS)
        return {name: int(v or 0) for name, v in zip(_COUNTERS, values, strict=True)}

    def advance_cursor(self, job_id: str, expected: int, new: int) -> bool:
        return bool(self._advance(keys=[keys.job_key(job_id)], args=[expected, new]))

    def finished_waiting(self, job_id: str) -> int:
        return int(self.client.scard(keys.job_finished_key(job_id)))

    def pending_batches(self, job_id: str) -> int:
        return int(self.client.hlen(keys.job_batches_key(job_id)))

    def claim_batch(self, job_id: str, max_episodes: int) -> Batch | None:
        reply = self._claim(
            keys=[keys.job_key(job_id), keys.job_finished_key(job_id), keys.job_batches_key(job_id)],
            args=[max_episodes],
        )
        if not reply:
            return None
        return Batch(seq=int(reply[0]), episode_ids=[i.decode() for i in reply[1:]])

    def commit_batch(self, job_id: str, batch: Batch, flat_indexes: list[int]) -> bool:
        batch_keys = [keys.job_key(job_id), keys.job_batches_key(job_id), keys.job_written_key(job_id)]
        batch_keys += [keys.episode_key(i) for i in batch.episode_ids]
        return bool(self._commit(keys=batch_keys, args=[batch.seq, *flat_indexes]))


def compose(fields: dict[bytes, bytes]) -> opb.Job:
    """A `start.v1.Job` from its Redis hash: the spec with counters and status filled in."""
    job = opb.Job.FromString(fields[b"spec"])
    value = {k.decode(): v.decode() for k, v in fields.items() if k != b"spec"}
    number = {name: int(value.get(name, 0) or 0) for name in _COUNTERS}
    status = value.get("status", RUNNING)
    job.status = STATUS.get(status, opb.JOB_STATUS_RUNNING)
    finished = number["done"] + number["failed"] + number["cancelled"]
    never_started = number["total"] - number["admitted"] if status == CANCELLED else 0
    counts = job.counts
    counts.problems = int(value.get("problems", 0) or 0)
    counts.episodes = number["total"]
    counts.done, counts.failed = number["done"], number["failed"]
    counts.cancelled = number["cancelled"] + max(0, never_started)
    counts.running = max(0, number["admitted"] - finished)
    counts.pending = max(0, number["total"] - number["admitted"] - max(0, never_started))
    counts.written = number["written"]
    counts.correct, counts.tokens, counts.tool_calls = number["correct"], number["tokens"], number["tool_calls"]
    job.accuracy = number["correct"] / number["done"] if number["done"] else 0.0
    job.finished_unix = float(value.get("finished", 0) or 0)
    return job


def arm_name(arm: int) -> str:
    return ARM_NAMES.get(arm, "unspecified")


def arm_defaults(arm: int, samples: int) -> tuple[pb.EpisodeOptions, int]:
    """The paper's settings of an arm, and its samples per problem (0 asks for the default)."""
    if arm == opb.ARM_SAMPLE:
        options = pb.EpisodeOptions(
            sampling=pb.SamplingParams(temperature=0.6, top_p=0.95), hints_enabled=False, max_think_hints=0
        )
        return options, samples or 16
    hints = arm == opb.ARM_HINT_INFER
    options = pb.EpisodeOptions(
        sampling=pb.SamplingParams(temperature=0.0, top_p=1.0),
        hints_enabled=hints,
        reflection_hint_probability=1.0 if hints else 0.0,
        max_think_hints=1 if hints else 0,
    )
    return options, samples or 1


def merged_options(defaults: pb.EpisodeOptions, overrides: pb.EpisodeOptions) -> pb.EpisodeOptions:
    """The arm's defaults with every field the request set on top (proto3 merge: set fields win)."""
    merged = pb.EpisodeOptions()
    merged.CopyFrom(defaults)
    merged.MergeFrom(overrides)
    return merged


def episode_of(job: opb.Job, problem: pb.Problem, problem_index: int, sample_index: int) -> pb.Episode:
    """Episode (problem, sample) of a job, as the controller admits it."""
    options = pb.EpisodeOptions()
    options.CopyFrom(job.options)
    if options.sampling.temperature > 0:
        # Each sample its own replayable draw; steps add their number to it (steps.py).
        options.sampling.seed = (options.seed * 1_000_003 + problem_index * 1009 + sample_index) % (2**31)
    return pb.Episode(
        id=episode_id_for(job.id, problem_index, sample_index),
        problem=problem,
        options=options,
        status=pb.EPISODE_STATUS_PENDING,
        created_unix=time.time(),
        job_id=job.id,
        problem_index=problem_index,
        sample_index=sample_index,
    )
