"""`startctl train`: data conversion, local training, the Job's launch, and Kubernetes submission.

    startctl train demo-episodes --out runs/data/episodes.jsonl   # until real episodes exist
    startctl train convert runs/data/episodes.jsonl --out runs/data/micro-demo.jsonl
    startctl train sft --config micro                              # this machine
    startctl train submit --nodes 4 --gpus-per-node 8 --config start [--dry-run]  # the chart's Job
    startctl train launch --config FILE                            # what each Job pod runs
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from startctl.processes import free_port

app = typer.Typer(help="Train START-0 / START: SFT with DeepSpeed, locally or as a Kubernetes Job.",
                  no_args_is_help=True)
console = Console(stderr=True)

CONFIG_HELP = "Training config: a YAML file, or a name in training/configs (micro, start)."
SET_HELP = "Override a config key: key=value (YAML value)."


def _check_config(config: str, overrides: list[str], local: bool = False) -> None:
    """Fail here, once, with the config's own message, before any process starts. A local run
    also checks that its model and data exist (a submitted one finds them on cluster volumes)."""
    from training.config import load_config, parse_config_overrides

    try:
        cfg = load_config(config, parse_config_overrides(overrides))
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]bad training config:[/red] {exc}")
        raise typer.Exit(2) from exc
    missing = [p for p in [cfg.model, *cfg.data] if local and not Path(p).exists()]
    if missing:
        console.print(f"[red]not found:[/red] {', '.join(missing)} (see docs/training.md for making data)")
        raise typer.Exit(2)


@app.command()
def sft(
    config: str = typer.Option(..., help=CONFIG_HELP),
    nproc: int = typer.Option(0, help="Trainer processes; 0: one per GPU, or 1 on CPU."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Train on this machine (one node, loopback rendezvous)."""
    from training.launcher import Rendezvous, launch

    _check_config(config, set_, local=True)
    launch(Rendezvous(nnodes=1, node_rank=0, nproc_per_node=nproc, master_port=free_port()), config, set_)


@app.command()
def launch(
    config: str = typer.Option(..., help=CONFIG_HELP),
    nnodes: int | None = typer.Option(None, help="Nodes (else START_TRAIN_NNODES)."),
    node_rank: int | None = typer.Option(None, help="This node (else JOB_COMPLETION_INDEX)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """One node's share of a multi-node run; rendezvous from the environment (the Job's pods)."""
    from training.launcher import Rendezvous
    from training.launcher import launch as run_launch

    _check_config(config, set_)
    flags = {k: v for k, v in {"nnodes": nnodes, "node_rank": node_rank}.items() if v is not None}
    run_launch(Rendezvous(**flags), config, set_)


@app.command()
def convert(
    episodes: Path = typer.Argument(..., exists=True, help="Episode records, one JSON object per line."),
    out: Path = typer.Option(..., help="Training samples (JSONL) to write."),
) -> None:
    """Convert recorded episodes into the training format."""
    from training.convert import convert_records, read_episode_records
    from training.data import write_samples

    samples, skipped = convert_records(read_episode_records(episodes))
    written = write_samples(samples, out)
    console.print(f"{written} samples written to {out}; {skipped} episodes without model text skipped")


@app.command("demo-episodes")
def demo_episodes(
    out: Path = typer.Option(..., help="Episode records (JSONL) to write."),
    count: int = typer.Option(512, min=1),
    seed: int = 0,
) -> None:
    """Write episode records made from the micro model's synthetic traces."""
    from training.demo_episodes import write_demo_episodes

    console.print(f"{write_demo_episodes(out, count, seed)} episode records written to {out}")


@app.command()
def submit(
    config: str = typer.Option(..., help=CONFIG_HELP),
    nodes: int | None = typer.Option(None, min=1, help="Nodes (pods); default: the chart's training.nodes."),
    gpus_per_node: int | None = typer.Option(
        None, min=0, help="GPUs per pod (0: CPU); default: the chart's training.gpusPerNode."
    ),
    nproc_per_node: int | None = typer.Option(None, min=1, help="Trainer processes per pod; default: one per GPU."),
    name: str = typer.Option("start-sft", help="Job name, and the release name the chart is rendered with."),
    namespace: str = typer.Option("default"),
    image: str | None = typer.Option(None, help="Training image REPOSITORY[:TAG]; default: the chart's."),
    volume_claim: list[str] = typer.Option(
        [], help="CLAIM[:MOUNT_PATH] of the existing PVC with models, data and runs (the chart's shared volume); "
        "none: the chart's PVC is created for the run."
    ),
    master_port: int | None = typer.Option(None, help="Rendezvous port; default: the chart's training.masterPort."),
    values: Path | None = typer.Option(
        None, "--values", "-f", exists=True, dir_okay=False, help="Chart values file, as for helm install -f."
    ),
    chart: Path | None = typer.Option(None, help="The START chart's directory; default: this checkout's."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the manifests as YAML; create nothing."),
) -> None:
    """Create a run from the chart's training objects: its Indexed Job (from the chart's CronJob),
    headless Service, config ConfigMap, NetworkPolicy and, without --volume-claim, shared PVC."""
    import helm_python as helm
    import yaml

    from training.config import parse_config_overrides, resolve_config_path
    from training.k8s import RunSettings, create, render_run, to_yaml

    _check_config(config, set_)
    if len(volume_claim) > 1:
        console.print("[red]one --volume-claim:[/red] the chart's training pods mount one shared volume; "
                      "put the model, the data and the runs on one claim")
        raise typer.Exit(2)
    claim, _, mount = volume_claim[0].partition(":") if volume_claim else (None, "", "")
    raw = yaml.safe_load(resolve_config_path(config).read_text()) or {}
    settings = RunSettings(
        name=name, namespace=namespace, config={**raw, **parse_config_overrides(set_)}, nodes=nodes,
        gpus_per_node=gpus_per_node, nproc_per_node=nproc_per_node, image=image, shared_claim=claim,
        shared_mount=mount or None, master_port=master_port,
    )
    try:
        values_file = helm.values_from_yaml(values.read_text()) if values else None
        objects = render_run(settings, values_file, chart)
    except (helm.HelmError, ValueError) as exc:
        console.print(f"[red]the chart refused the run's settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    if dry_run:
        typer.echo(to_yaml(objects))
        return
    create(objects, namespace)
    job = objects[-1]["spec"]
    console.print(f"created job/{name} ({job['completions']} pods) in namespace {namespace}")
