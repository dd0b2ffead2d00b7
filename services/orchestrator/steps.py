"""One step of an episode: the orchestrator's domain logic, without Celery or Redis.

`take_step(episode, peers)` does the one thing the episode's `next_action` says and
asks the hint policy what comes next:

    first step  render the prompt with the model's chat template; policy(START)
    GENERATE    continue the text with the policy's stop strings; classify why it
                stopped; append what the model wrote; policy(that stop reason)
    RUN_TOOL    run the python block just closed in the sandbox; append its output
                as a fenced ```output block; policy(TOOL_DONE)
    FINISH      score the response; the episode is DONE

An episode has a wall-clock budget from its creation (`budget_s`; the workers' setting
`episode_budget_s`): each call of a step gets what is left of it as its deadline (capped
by the per-call timeout), and a step that finds it spent ends the episode FAILED, saying
so, instead of calling a peer.

It changes the episode in place and advances `steps` by one; `tasks.py` saves it. This
module owns the episode's counters (steps, tool calls, hints, tokens); the policy reads them
through an `EpisodeView` and owns the decisions (stops, hints, the token budget), and
`append_span` alone decides when thinking is done.
"""

from __future__ import annotations

import time

from services.common.episode import append_span, context_pieces, text_of
from services.common.text_contract import (
    CLOSING_FENCE,
    END_THINK,
    PYTHON_FENCE,
    format_tool_output,
    last_closed_code_block,
    open_code_block,
    truncate_output,
)
from services.orchestrator.peers import Peers, TransientError
from start.v1 import common_pb2 as pb
from start.v1 import generation_pb2, hints_pb2, sandbox_pb2, scoring_pb2

# Lines of a failing program's stderr shown to the model: the traceback's end says what broke.
ERROR_TAIL_LINES = 5


WORKER_BUDGET_SETTING = "START_WORKER_EPISODE_BUDGET_S"


def take_step(
    episode: pb.Episode, peers: Peers, budget_s: float = 0.0, budget_setting: str = WORKER_BUDGET_SETTING
) -> None:
    """`budget_s`: the episode's wall-clock budget, counted from `created_unix` (0: none);
    `budget_setting`: the setting that sets it, named when the budget runs out."""
    if budget_s:
        deadline = episode.created_unix + budget_s
        if time.time() >= deadline:
            end_early(episode, pb.EPISODE_STATUS_FAILED, budget_spent(episode, budget_s, budget_setting))
            return
        peers = peers.until(deadline)
    if episode.status == pb.EPISODE_STATUS_PENDING:
        _start(episode, peers)
    elif episode.next_action == pb.ACTION_KIND_GENERATE:
        _generate(episode, peers)
    elif episode.next_action == pb.ACTION_KIND_RUN_TOOL:
        _run_tool(episode, peers)
    elif episode.next_action == pb.ACTION_KIND_FINISH:
        _finish(episode, peers)
    else:
        raise ValueError(f"episode {episode.id} has no next action (status {episode.status})")
    episode.steps += 1


def budget_spent(episode: pb.Episode, budget_s: float, setting: str = WORKER_BUDGET_SETTING) -> str:
    """Why an episode ended at its budget: what it had done, and the setting to raise."""
    return (
        f"wall-clock budget of {budget_s:g} s spent before step {episode.steps} "
        f"({episode.tool_calls} tool calls, {episode.generated_tokens} tokens generated); "
        f"raise {setting} for longer episodes"
    )


def end_early(episode: pb.Episode, status: int, error: str) -> None:
    """End the episode without taking its step (it failed, or its job was cancelled): the
    step still counts, so that a save of it is a step like any other."""
    episode.status = status
    episode.error = error
    episode.finished_unix = time.time()
    episode.steps += 1


def _start(episode: pb.Episode, peers: Peers) -> None:
    append_span(episode, pb.SPAN_KIND_PROMPT, peers.render_chat(episode.problem.question))
    episode.status = pb.EPISODE_STATUS_RUNNING
    _apply(episode, hints_pb2.STOP_REASON_START, peers.next_action(episode, hints_pb2.STOP_REASON_START))


def _generate(episode: pb.Episode, peers: Peers) -> None:
    in_code = open_code_block(text_of(episode)) is not None
    sampling = pb.SamplingParams()
    sampling.CopyFrom(episode.options.sampling)
    sampling.max_tokens = episode.next_max_tokens
    sampling.stop[:] = list(episode.next_stop)
    sampling.include_stop_str_in_output = False
    sampling.n = 1
    if sampling.HasField("seed"):
        sampling.seed += episode.steps  # each continuation its own, replayable, draw
    started = time.monotonic()
    # One call: what the model wrote goes back as its own ids, appended text as text; the
    # engine cuts max_tokens to the context's room and answers LENGTH once none is left.
    reply = peers.generate(episode.id, context_pieces(episode), sampling)
    episode.generation_s += time.monotonic() - started
    completion = reply.completions[0]
    _add_usage(episode, reply.usage)
    episode.generated_tokens += reply.usage.completion_tokens or len(completion.token_ids)
    kind = pb.SPAN_KIND_TOOL_CODE if in_code else pb.SPAN_KIND_MODEL
    tail = completion.text_tail
    written = completion.text[: len(completion.text) - len(tail)]
    append_span(episode, kind, written, token_ids=completion.text_token_ids)
    append_span(episode, kind, tail)  # re-tokenised with what comes next
    reason = classify_stop(completion, in_code)
    _apply(episode, reason, peers.next_action(episode, reason, completion.stop_string))


def classify_stop(completion: generation_pb2.Completion, in_code: bool) -> int:
    """Why generation stopped, in the policy's terms."""
    if completion.finish_reason == generation_pb2.FINISH_REASON_LENGTH:
        return hints_pb2.STOP_REASON_LENGTH
    if completion.finish_reason == generation_pb2.FINISH_REASON_ABORT:
        raise TransientError("generation was aborted by the engine")
    stop = completion.stop_string
    if not stop:
        return hints_pb2.STOP_REASON_EOS
    if in_code and stop == CLOSING_FENCE:
        return hints_pb2.STOP_REASON_CODE_END
    if stop == END_THINK:
        return hints_pb2.STOP_REASON_END_THINK
    if stop == PYTHON_FENCE:
        return hints_pb2.STOP_REASON_CODE_START
    return hints_pb2.STOP_REASON_REFLECTION


def _run_tool(episode: pb.Episode, peers: Peers) -> None:
    code = last_closed_code_block(text_of(episode))
    if code is None:
        raise ValueError("RUN_TOOL without a closed python block")
    started = time.monotonic()
    result = peers.execute(code)
    episode.tool_s += time.monotonic() - started
    output = tool_output(result)
    append_span(
        episode,
        pb.SPAN_KIND_TOOL_OUTPUT,
        format_tool_output(truncate_output(output, episode.options.max_tool_output_chars)),
    )
    episode.tool_calls += 1
    _apply(episode, hints_pb2.STOP_REASON_TOOL_DONE, peers.next_action(episode, hints_pb2.STOP_REASON_TOOL_DONE))


def tool_output(result: sandbox_pb2.ExecuteResponse) -> str:
    """What the model sees of a run: stdout, then on failure what went wrong."""
    status = result.status
    if status == sandbox_pb2.EXECUTION_STATUS_SANDBOX_ERROR:
        raise TransientError(f"sandbox error: {result.stderr[-500:]}")
    if status in (sandbox_pb2.EXECUTION_STATUS_OK, sandbox_pb2.EXECUTION_STATUS_OUTPUT_LIMIT):
        return result.stdout
    if status == sandbox_pb2.EXECUTION_STATUS_TIMEOUT:
        problem = "TimeoutError: the code ran past its time limit"
    elif status == sandbox_pb2.EXECUTION_STATUS_MEMORY_LIMIT:
        problem = "MemoryError: the code ran past its memory limit"
    else:
        problem = "\n".join(result.stderr.rstrip().splitlines()[-ERROR_TAIL_LINES:])
    stdout = result.stdout if not result.stdout or result.stdout.endswith("\n") else result.stdout + "\n"
    return stdout + problem


def _finish(episode: pb.Episode, peers: Peers) -> None:
    response = "".join(span.text for span in episode.spans if span.kind != pb.SPAN_KIND_PROMPT)
    problem = episode.problem
    item = scoring_pb2.ScoreItem(
        task_type=problem.task_type, response=response, reference=problem.reference, tests=problem.tests
    )
    result = peers.score(item)
    episode.score.CopyFrom(pb.Score(correct=result.correct, extracted=result.extracted, reason=result.reason))
    episode.status = pb.EPISODE_STATUS_DONE
    episode.finished_unix = time.time()


def _apply(episode: pb.Episode, reason: int, action: hints_pb2.NextActionResponse) -> None:
    """Append what the policy said, count its hints, and record what comes next."""
    for span in action.append:
        append_span(episode, span.kind, span.text, span.hint_id, span.hint_category)
        if span.kind == pb.SPAN_KIND_HINT:
            if reason == hints_pb2.STOP_REASON_END_THINK:
                episode.think_hints += 1
            elif reason == hints_pb2.STOP_REASON_REFLECTION:
                episode.reflection_hints += 1
    episode.next_stop[:] = list(action.stop)
    episode.next_max_tokens = action.max_tokens
    episode.next_action = action.kind


def _add_usage(episode: pb.Episode, usage: pb.Usage) -> None:
    episode.usage.prompt_tokens += usage.prompt_tokens
    episode.usage.cached_prompt_tokens += usage.cached_prompt_tokens
    episode.usage.completion_tokens += usage.completion_tokens
