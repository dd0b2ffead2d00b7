"""Poke a running generation service by hand.

    python -m services.generation.client --addr 127.0.0.1:50051 info
    python -m services.generation.client generate "The answer is" --max-tokens 32 --stop "."
    python -m services.generation.client stream "Wait," --temperature 0.6 --seed 1
    python -m services.generation.client chat "What is 12*34?"
"""

from __future__ import annotations

import typer
from google.protobuf import json_format

from services.common.channels import channel
from services.common.settings import DEFAULT_PORTS
from start.v1 import common_pb2, generation_pb2, generation_pb2_grpc

app = typer.Typer(no_args_is_help=True, help=__doc__)
ADDR = typer.Option(f"127.0.0.1:{DEFAULT_PORTS['generation']}", "--addr", help="host:port of the service.")


def _stub(addr: str) -> generation_pb2_grpc.GenerationServiceStub:
    return generation_pb2_grpc.GenerationServiceStub(channel(addr))


def _request(prompt: str, max_tokens: int, temperature: float, seed: int | None, stop: list[str], n: int):
    sampling = common_pb2.SamplingParams(
        max_tokens=max_tokens, temperature=temperature, stop=stop, n=n, include_stop_str_in_output=True
    )
    if seed is not None:
        sampling.seed = seed
    return generation_pb2.GenerateRequest(prompt=prompt, sampling=sampling)


@app.command()
def info(addr: str = ADDR) -> None:
    """The served model, its context length and the engine's running / waiting requests."""
    typer.echo(json_format.MessageToJson(_stub(addr).ModelInfo(generation_pb2.ModelInfoRequest())))


@app.command()
def generate(
    prompt: str,
    addr: str = ADDR,
    max_tokens: int = 64,
    temperature: float = 0.0,
    seed: int | None = None,
    stop: list[str] = typer.Option([], help="Stop string; repeat for more."),
    n: int = 1,
) -> None:
    """One Generate call; prints the response as JSON."""
    reply = _stub(addr).Generate(_request(prompt, max_tokens, temperature, seed, stop, n), timeout=300)
    typer.echo(json_format.MessageToJson(reply))


@app.command()
def stream(
    prompt: str,
    addr: str = ADDR,
    max_tokens: int = 64,
    temperature: float = 0.0,
    seed: int | None = None,
    stop: list[str] = typer.Option([], help="Stop string; repeat for more."),
) -> None:
    """GenerateStream: prints text as it arrives, then the usage."""
    for chunk in _stub(addr).GenerateStream(_request(prompt, max_tokens, temperature, seed, stop, 1), timeout=300):
        typer.echo(chunk.delta_text, nl=False)
        if chunk.HasField("usage"):
            typer.echo("\n" + json_format.MessageToJson(chunk.usage))


@app.command()
def chat(message: str, addr: str = ADDR, max_tokens: int = 64) -> None:
    """Render one user message with the model's chat template, then generate the reply."""
    stub = _stub(addr)
    rendered = stub.RenderChat(
        generation_pb2.RenderChatRequest(
            messages=[generation_pb2.ChatMessage(role="user", content=message)], add_generation_prompt=True
        )
    )
    reply = stub.Generate(_request(rendered.text, max_tokens, 0.0, None, [], 1), timeout=300)
    typer.echo(rendered.text + reply.completions[0].text)


if __name__ == "__main__":
    app()
