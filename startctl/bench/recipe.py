"""`startctl bench recipe`: the micro recipe's floors (issue 13), measured by running it.

The same run as `startctl demo --full` (startctl/recipe_run.py): the base model's greedy
and hint-infer, START-0 under each hint-loss setting, START from RFT, the K curve; every
figure on held-out problems with its 95% interval, and the baseline (the base model's
greedy accuracy) measured in the same run. Floors: hint-infer at least 20 points over
greedy; START-0 at least 20 points over the base with a tool call in at least half its
episodes; START not below START-0's interval; the base's K curve rising from K = 0 to 1 and
at K = 8 at most 5 points below K = 1. About 20 minutes on 2 cores.
"""

from __future__ import annotations

from rich.console import Console

from startctl.recipe_run import Plan, RecipeRun, summary_table
from startctl.stack import new_run_dir


def run(console: Console) -> dict:
    run_dir = new_run_dir("bench-recipe")
    figures = RecipeRun(Plan(), run_dir, console).run()
    console.print(summary_table(figures))
    for name, floor in figures["floors"].items():
        console.print(f"{name}: {floor['value']} ({floor['rule']}) -> {'met' if floor['met'] else 'not met'}")
    console.print(f"report: {run_dir / 'report.md'}")
    return figures
