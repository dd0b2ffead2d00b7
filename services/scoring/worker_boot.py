"""Imported once by the grader pool's forkserver: every worker forks from a process that
has already loaded sympy and math-verify and built the LaTeX parser (about a second each
time otherwise, and again for every worker replaced after a timeout)."""

from services.scoring import graders, repetition  # noqa: F401 - loaded for the forked workers
from services.scoring.math_equiv import warm_up

warm_up()
