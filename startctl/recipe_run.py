"""`startctl demo --full`: the whole START recipe on the micro base model, with the platform's
own jobs, dataset builders, trainer and evaluation, and a report of the paper's three effects.

Stages (each model is served by its own embedded platform, `LocalStack`):

1. base (models/micro-base): greedy and hint-infer jobs over the training problems; greedy,
   hint-infer and greedy with K `</think>` hints over the held-out problems.
2. Hint-RFT: `dataset build hint-rft` (greedy wrong, hint-infer right) -> export -> SFT of the
   base on two DeepSpeed processes -> START-0, once per hint-loss setting of the ablation
   (`LOSS_SETTINGS`), each evaluated greedy, without hints, on the held-out problems.
3. The recipe's START-0 is the first setting that meets START-0's floors (the paper's
   setting first, so it stays the default unless the figures say otherwise): it samples 16
   responses per training problem (temperature 0.6, top-p 0.95) and runs the K curve.
4. RFT: `dataset build rft` -> SFT of the base -> START, evaluated greedy on held-out problems.
5. The report: `report.md`, `stages.png`, `k_curve.png` and `figures.json` in the run folder.

The floors are issue 13's, computed from the figures (`floors`). Every job's Parquet results
and report stay under `jobs/`, datasets under `datasets/`, models under `models/`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from recipe.evaluate import evaluate_job
from services.orchestrator import results
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from startctl.episodes import hint_infer_options, think_hint_options
from startctl.job_cmd import FINISHED as FINISHED_JOBS
from startctl.job_cmd import FrontDoor
from startctl.stack import ROOT, LocalStack

DATA = ROOT / "data" / "micro-base"
BASE_MODEL = ROOT / "models" / "micro-base"
TRAIN_CONFIG = "micro-start"  # training/configs/micro-start.yaml

# The ablation of where the loss goes on hint tokens (training/data.py LossPolicy); the
# paper's setting first: it is the recipe's unless it misses START-0's floors.
LOSS_SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("no loss on hints (the paper)", {}),
    "fence": ("loss on the python fence a hint ends with", {"loss_on_hint_fence": True}),
    "hint": ("loss on the whole hint", {"loss_on_hints": True}),
}

# Issue 13's floors, on held-out problems.
HINT_GAIN = 0.20  # hint-infer over greedy (base)
START0_GAIN = 0.20  # START-0 greedy over the base's greedy
START0_TOOL_USE = 0.5  # share of START-0's greedy episodes with a tool call
K_CURVE_DROP = 0.05  # accuracy at the largest K may be at most this below K = 1


@dataclass(frozen=True)
class Plan:
    """What a run does; the defaults are `startctl demo --full`, a test runs less."""

    train: Path = DATA / "train.jsonl"
    held_out: Path = DATA / "eval.jsonl"
    base: Path = BASE_MODEL
    train_limit: int = 0  # 0: every problem of the file
    held_out_limit: int = 0
    sample_limit: int = 64  # training problems START-0 samples for RFT
    samples: int = 16
    # RFT keeps, per problem, a right sample with a tool call where there is one (the paper's
    # D_START is there to teach tool use). Its set is two thirds of Hint-RFT's, so START
    # trains 6 epochs (about START-0's number of steps): at 3, or picking any right sample,
    # START stayed 10-20 points under START-0 (README, "The micro recipe").
    rft_prefer_tool_calls: bool = True
    start_epochs: int = 6
    ks: tuple[int, ...] = (0, 1, 2, 4, 8)
    settings: tuple[str, ...] = tuple(LOSS_SETTINGS)
    rft: bool = True
    nproc: int = 2
    timeout_s: float = 1800


@dataclass
class Arm:
    """One job of the run: what to submit, and once it has ended, its evaluation."""

    name: str
    problems: Path
    arm: int
    options: pb.EpisodeOptions
    limit: int = 0
    samples: int = 0
    job: opb.Job | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        assert self.job is not None
        return self.job.results_url

    @property
    def accuracy(self) -> float:
        return float(self.evaluation["groups"][0]["pass@1"])

    @property
    def interval(self) -> list[float]:
        return list(self.evaluation["groups"][0]["ci95"]["pass@1"])

    @cached_property
    def tool_use(self) -> float:
        """Share of the job's episodes with at least one tool call (read once the job has ended)."""
        calls = results.read_results(self.url, columns=["tool_calls"]).column("tool_calls").to_pylist()
        return sum(c > 0 for c in calls) / len(calls) if calls else 0.0

    def row(self) -> dict[str, Any]:
        group = self.evaluation["groups"][0]
        return {
            "accuracy": self.accuracy,
            "ci95": self.interval,
            "n": group["n"],
            "tool_use": self.tool_use,
            "tool_calls_per_episode": group["tool_calls_per_episode"],
            "job": self.url,
        }


def greedy(name: str, problems: Path, limit: int) -> Arm:
    return Arm(name, problems, opb.ARM_GREEDY, hint_infer_options(False), limit)


def hint_infer(name: str, problems: Path, limit: int) -> Arm:
    return Arm(name, problems, opb.ARM_HINT_INFER, hint_infer_options(True), limit)


def think_hints(name: str, problems: Path, limit: int, k: int) -> Arm:
    """Greedy decoding with up to K hints in place of `</think>` (no reflection hints)."""
    return Arm(name, problems, opb.ARM_GREEDY, think_hint_options(k), limit)


def sample(name: str, problems: Path, limit: int, samples: int) -> Arm:
    options = hint_infer_options(False)
    options.sampling.temperature, options.sampling.top_p = 0.6, 0.95
    return Arm(name, problems, opb.ARM_SAMPLE, options, limit, samples)


class RecipeRun:
    """One run of the recipe in `run_dir`; `run()` returns the figures."""

    def __init__(self, plan: Plan, run_dir: Path, console: Console) -> None:
        unknown = [s for s in plan.settings if s not in LOSS_SETTINGS]
        if unknown or not plan.settings:
            raise ValueError(f"loss settings must be some of {list(LOSS_SETTINGS)}, not {list(plan.settings)}")
        for path in (plan.train, plan.held_out):
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist")
        self.plan, self.run_dir, self.console = plan, run_dir, console
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    # --- stages -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        p = self.plan
        base = {
            "train greedy": greedy("base train greedy", p.train, p.train_limit),
            "train hint-infer": hint_infer("base train hint-infer", p.train, p.train_limit),
            "greedy": greedy("base greedy", p.held_out, p.held_out_limit),
            "hint-infer": hint_infer("base hint-infer", p.held_out, p.held_out_limit),
        }
        base_k = self.k_arms("base")
        self.serve("base", p.base, [*base.values(), *base_k.values()])

        hint_rft = self.build_dataset("hint-rft", [base["train greedy"], base["train hint-infer"]])
        start0: dict[str, Arm] = {}
        for setting in p.settings:
            model = self.train(f"start-0-{setting}", hint_rft, LOSS_SETTINGS[setting][1])
            start0[setting] = greedy(f"START-0 ({setting}) greedy", p.held_out, p.held_out_limit)
            self.serve(f"START-0 ({setting})", model, [start0[setting]])
        base_greedy = base["greedy"].accuracy
        meets = [s for s in p.settings if meets_start0_floors(base_greedy, start0[s].accuracy, start0[s].tool_use)]
        chosen = meets[0] if meets else p.settings[0]
        chosen_model = self.run_dir / "models" / f"start-0-{chosen}" / "final"

        start0_k, samples, start = self.k_arms("START-0"), None, None
        if p.rft:
            samples = sample("START-0 samples", p.train, p.sample_limit, p.samples)
        if start0_k or samples:
            self.serve(
                f"START-0 ({chosen}) K curve and RFT samples",
                chosen_model,
                [*start0_k.values(), *([samples] if samples else [])],
            )
        if samples:
            rft = self.build_dataset("rft", [samples], prefer_tool_calls=p.rft_prefer_tool_calls)
            model = self.train("start", rft, {**LOSS_SETTINGS[chosen][1], "epochs": p.start_epochs})
            start = greedy("START greedy", p.held_out, p.held_out_limit)
            self.serve("START", model, [start])

        figures = self.figures(base, base_k, start0, chosen, start0_k, start)
        write_report(figures, self.run_dir)
        return figures

    def k_arms(self, who: str) -> dict[int, Arm]:
        """Greedy with K `</think>` hints for each K > 0 of the plan (K = 0 is the greedy arm)."""
        p = self.plan
        return {k: think_hints(f"{who} K={k}", p.held_out, p.held_out_limit, k) for k in p.ks if k}

    def serve(self, label: str, model: Path, arms: list[Arm]) -> None:
        """Start a platform serving `model`, run `arms` as jobs there at once, evaluate them."""
        self.console.rule(f"{label}: {len(arms)} job(s) on {model}")
        t0 = time.monotonic()
        platform = self.run_dir / "platform" / slug(label)
        with LocalStack(run_dir=platform, model=model, on_status=self.console.log) as stack:
            door = FrontDoor(stack.addr("orchestrator"))
            try:
                for arm in arms:
                    arm.job = door.submit(
                        opb.SubmitJobRequest(
                            problem_set=opb.ProblemSetRef(url=str(arm.problems.resolve())),
                            arm=arm.arm,
                            options=arm.options,
                            samples=arm.samples,
                            results_url=str(self.run_dir / "jobs"),
                            limit=arm.limit,
                        )
                    ).job
                follow_jobs(door, {arm.name: arm.job for arm in arms}, self.remaining(), self.console)
            finally:
                door.close()
        for arm in arms:
            arm.evaluation = evaluate_job(arm.url)
        self.timings[label] = time.monotonic() - t0

    def build_dataset(self, kind: str, arms: list[Arm], prefer_tool_calls: bool = False) -> Path:
        """`dataset build` and `dataset export --format start`; the exported file."""
        from recipe.export import export
        from recipe.select import build, open_job
        from startctl.dataset_cmd import selection_settings

        roles = ("greedy", "hint-infer") if kind == "hint-rft" else ("samples",)
        allowed = {"greedy": ("greedy",), "hint-infer": ("hint-infer",), "samples": ("sample",)}
        sources = [
            open_job(role, arm.url, str(self.run_dir / "jobs"), allowed[role])
            for role, arm in zip(roles, arms, strict=True)
        ]
        dataset = build(
            kind,
            sources,
            str(self.run_dir / "datasets" / kind),
            selection_settings(seed=0, max_repetition_score=1.0, prefer_tool_calls=prefer_tool_calls),
        )
        exported = export(dataset, "start")
        self.console.log(
            f"{kind} dataset: {dataset.build['kept']} of {dataset.build['problems_seen']} problems kept,"
            f" exported to {exported.url}"
        )
        if not exported.exported:
            raise RuntimeError(f"the {kind} dataset is empty: nothing to train on (see {dataset.url}/README.md)")
        return Path(exported.url)

    def train(self, name: str, data: Path, overrides: dict[str, Any]) -> Path:
        """`startctl train sft --config micro-start` from the base; the final model's folder."""
        out = self.run_dir / "models" / name
        sets = {"model": str(self.plan.base), "data": [str(data)], "output_dir": str(out), **overrides}
        cmd = [
            sys.executable,
            "-m",
            "startctl",
            "train",
            "sft",
            "--config",
            TRAIN_CONFIG,
            "--nproc",
            str(self.plan.nproc),
            *(f"--set={k}={json.dumps(v)}" for k, v in sets.items()),
        ]
        self.console.rule(f"SFT {name} ({' '.join(f'{k}={v}' for k, v in overrides.items()) or 'paper'})")
        t0 = time.monotonic()
        log = self.run_dir / "logs" / f"sft-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as fh, self.console.status(f"training {name} (log: {log})"):
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=self.remaining(), cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"training {name} failed (exit {done.returncode}); its log: {log}")
        metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        self.console.log(
            f"{name}: {len(metrics)} steps, loss {metrics[0]['train/loss']:.3f} -> "
            f"{metrics[-1]['train/loss']:.3f} in {time.monotonic() - t0:.0f} s"
        )
        self.timings[f"SFT {name}"] = time.monotonic() - t0
        return out / "final"

    def remaining(self) -> float:
        left = self.plan.timeout_s - (time.monotonic() - self.started)
        if left <= 0:
            raise TimeoutError(f"the recipe ran past its {self.plan.timeout_s:.0f} s")
        return left

    # --- figures ----------------------------------------------------------------------------

    def figures(
        self,
        base: dict[str, Arm],
        base_k: dict[int, Arm],
        start0: dict[str, Arm],
        chosen: str,
        start0_k: dict[int, Arm],
        start: Arm | None,
    ) -> dict[str, Any]:
        base_greedy, hint = base["greedy"], base["hint-infer"]
        figures: dict[str, Any] = {
            "problems": base_greedy.evaluation["groups"][0]["n"],
            "greedy_accuracy": base_greedy.accuracy,
            "hint_accuracy": hint.accuracy,
            "base_greedy_accuracy": base_greedy.accuracy,
            "start0_setting": chosen,
            "start0_greedy_accuracy": start0[chosen].accuracy,
            "start0_tool_use": start0[chosen].tool_use,
            "start_greedy_accuracy": start.accuracy if start else None,
            "k_curve": k_curve(base_greedy, base_k) if 0 in self.plan.ks else {},
            "start0_k_curve": k_curve(start0[chosen], start0_k) if 0 in self.plan.ks else {},
            "stages": {
                "base greedy": base_greedy.row(),
                "base hint-infer": hint.row(),
                **{f"START-0 ({s}) greedy": arm.row() for s, arm in start0.items()},
                **({"START greedy": start.row()} if start else {}),
            },
            "ablation": {
                s: {
                    "description": LOSS_SETTINGS[s][0],
                    "accuracy": a.accuracy,
                    "ci95": a.interval,
                    "tool_use": a.tool_use,
                    "meets_floors": meets_start0_floors(base_greedy.accuracy, a.accuracy, a.tool_use),
                }
                for s, a in start0.items()
            },
            "training": {
                "hint-rft": str(self.run_dir / "datasets" / "hint-rft"),
                "rft": str(self.run_dir / "datasets" / "rft") if start else None,
            },
            "seconds": round(time.monotonic() - self.started),
            "timings": {k: round(v) for k, v in self.timings.items()},
            "run_dir": str(self.run_dir),
            "plan": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.plan).items()},
        }
        figures["floors"] = floors(figures, start0[chosen].interval)
        figures["floors_met"] = all(f["met"] for f in figures["floors"].values() if f["met"] is not None)
        return figures


def k_curve(k0: Arm, arms: dict[int, Arm]) -> dict[str, float]:
    """Accuracy by K (JSON keys): K = 0 is the greedy arm without hints."""
    return {"0": k0.accuracy, **{str(k): arm.accuracy for k, arm in arms.items()}}


def meets_start0_floors(base_greedy: float, start0_greedy: float, tool_use: float) -> bool:
    return start0_greedy >= base_greedy + START0_GAIN and tool_use >= START0_TOOL_USE


def floors(figures: dict[str, Any], start0_interval: list[float]) -> dict[str, dict[str, Any]]:
    """Each floor of issue 13 with the figures it reads; `met` is None where the run did not
    measure it (a reduced run)."""
    base, hint = figures["base_greedy_accuracy"], figures["hint_accuracy"]
    s0, tool_use, start = (
        figures["start0_greedy_accuracy"],
        figures["start0_tool_use"],
        figures["start_greedy_accuracy"],
    )
    curve = figures["k_curve"]
    ks = sorted(int(k) for k in curve)
    out = {
        "hint-infer over greedy": {
            "rule": f">= +{HINT_GAIN:.0%}",
            "value": hint - base,
            "met": hint - base >= HINT_GAIN,
        },
        "START-0 over base": {"rule": f">= +{START0_GAIN:.0%}", "value": s0 - base, "met": s0 - base >= START0_GAIN},
        "START-0 tool use": {
            "rule": f">= {START0_TOOL_USE:.0%}",
            "value": tool_use,
            "met": tool_use >= START0_TOOL_USE,
        },
        "START vs START-0": {
            "rule": "START >= START-0's lower 95% bound",
            "value": start,
            "met": None if start is None else start >= start0_interval[0],
        },
    }
    if {0, 1} <= set(ks):
        rise = curve["1"] - curve["0"]
        change = curve[str(ks[-1])] - curve["1"]
        out["K curve rises 0 -> 1"] = {"rule": "> 0", "value": rise, "met": rise > 0}
        out[f"K curve K=1 -> K={ks[-1]}"] = {
            "rule": f">= -{K_CURVE_DROP:.0%}",
            "value": change,
            "met": change >= -K_CURVE_DROP,
        }
    else:
        out["K curve"] = {"rule": "K = 0, 1, ... 8", "value": None, "met": None}
    return out


# --- report ----------------------------------------------------------------------------------


def write_report(figures: dict[str, Any], run_dir: Path) -> None:
    """report.md, stages.png, k_curve.png and figures.json in run_dir."""
    (run_dir / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    plot_stages(figures, run_dir / "stages.png")
    if figures["k_curve"]:
        plot_k_curve(figures, run_dir / "k_curve.png")
    (run_dir / "report.md").write_text(render_markdown(figures))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _interval(ci: list[float] | None) -> str:
    return "-" if not ci or ci[0] is None else f"[{ci[0]:.0%}, {ci[1]:.0%}]"


def render_markdown(figures: dict[str, Any]) -> str:
    lines = [
        "# START on the micro model: the recipe end to end",
        "",
        f"{figures['problems']} held-out problems; greedy decoding unless the stage says otherwise. "
        f"START-0 is Hint-RFT (SFT of the base on the trajectories greedy got wrong and hint-infer right), "
        f"START is RFT (SFT of the base on START-0's right samples). Run in {figures['seconds']} s.",
        "",
        "## Accuracy by stage",
        "",
        "| stage | n | accuracy | 95% interval | episodes with a tool call | tool calls / episode |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for stage, row in figures["stages"].items():
        calls = row["tool_calls_per_episode"]
        lines.append(
            f"| {stage} | {row['n']} | {_pct(row['accuracy'])} | {_interval(row['ci95'])} | "
            f"{_pct(row['tool_use'])} | {'-' if calls is None else f'{calls:.2f}'} |"
        )
    lines += [
        "",
        "![accuracy by stage](stages.png)",
        "",
        "## Where the loss goes on hint tokens (START-0)",
        "",
        "| setting | what carries loss | accuracy | 95% interval | tool use | meets START-0's floors |",
        "|---|---|---:|---|---:|---|",
    ]
    for setting, row in figures["ablation"].items():
        lines.append(
            f"| {setting} | {row['description']} | {_pct(row['accuracy'])} | {_interval(row['ci95'])} | "
            f"{_pct(row['tool_use'])} | {'yes' if row['meets_floors'] else 'no'} |"
        )
    lines += [
        "",
        f"The recipe's START-0 (and START's training) uses **{figures['start0_setting']}**: the first "
        "setting, the paper's first, that meets START-0's floors (the paper's when none does).",
        "",
    ]
    if figures["k_curve"]:
        lines += ["## Accuracy against K `</think>` hints", "", "| K | base | START-0 |", "|---:|---:|---:|"]
        for k, value in figures["k_curve"].items():
            lines.append(f"| {k} | {_pct(value)} | {_pct(figures['start0_k_curve'].get(k))} |")
        lines += ["", "![accuracy against K](k_curve.png)", ""]
    lines += ["## Floors (issue 13)", "", "| floor | rule | value | met |", "|---|---|---:|---|"]
    for name, row in figures["floors"].items():
        value = row["value"]
        shown = "-" if value is None else f"{value:+.0%}" if "over" in name or "K curve" in name else f"{value:.0%}"
        lines.append(
            f"| {name} | {row['rule']} | {shown} | {'-' if row['met'] is None else 'yes' if row['met'] else 'no'} |"
        )
    lines += [
        "",
        f"All measured floors met: **{'yes' if figures['floors_met'] else 'no'}**.",
        "",
        "Every job's results and report are under `jobs/`, the datasets (with their cards) under "
        "`datasets/`, the models under `models/`, the training logs under `logs/`.",
        "",
    ]
    return "\n".join(lines)


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_stages(figures: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    stages = list(figures["stages"])
    rows = [figures["stages"][s] for s in stages]
    values = [r["accuracy"] for r in rows]
    errors = [
        [v - r["ci95"][0] for v, r in zip(values, rows, strict=True)],
        [r["ci95"][1] - v for v, r in zip(values, rows, strict=True)],
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    bars = axes[0].bar(range(len(stages)), values, yerr=errors, capsize=3, color="#a3c")
    axes[0].bar_label(bars, fmt="{:.0%}", padding=2)
    axes[0].set_ylim(0, 1.15)
    axes[0].set_title("accuracy (95% interval)")
    bars = axes[1].bar(range(len(stages)), [r["tool_use"] for r in rows], color="#888")
    axes[1].bar_label(bars, fmt="{:.0%}", padding=2)
    axes[1].set_ylim(0, 1.15)
    axes[1].set_title("episodes with a tool call")
    for ax in axes:
        ax.set_xticks(range(len(stages)), stages, rotation=25, ha="right", fontsize=8)
    fig.suptitle("START on the micro model, held-out problems")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_k_curve(figures: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, curve in (("base", figures["k_curve"]), ("START-0", figures["start0_k_curve"])):
        if curve:
            ax.plot([int(k) for k in curve], list(curve.values()), marker="o", label=label)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks([int(k) for k in figures["k_curve"]], list(figures["k_curve"]))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("K: hints in place of </think>")
    ax.set_ylabel("accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_table(figures: dict[str, Any]) -> Table:
    table = Table(title="START on the micro model (held-out problems)")
    for column in ("stage", "n", "accuracy", "95% interval", "tool use"):
        table.add_column(column, justify="right")
    for stage, row in figures["stages"].items():
        table.add_row(stage, str(row["n"]), _pct(row["accuracy"]), _interval(row["ci95"]), _pct(row["tool_use"]))
    return table


# --- helpers ---------------------------------------------------------------------------------


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")


def follow_jobs(door: FrontDoor, jobs: dict[str, opb.Job], timeout: float, console: Console) -> None:
    """A progress bar per job until every one has ended."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console) as progress:
        bars = {name: progress.add_task(name, total=job.counts.episodes) for name, job in jobs.items()}
        while True:
            current = {name: door.get(job.id) for name, job in jobs.items()}
            for name, job in current.items():
                progress.update(bars[name], completed=job.counts.done + job.counts.failed + job.counts.cancelled)
            if all(job.status in FINISHED_JOBS for job in current.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs not finished after {timeout:.0f} s")
            time.sleep(0.5)
