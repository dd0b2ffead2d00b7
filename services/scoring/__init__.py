"""Scoring service: graders for math answers, multiple-choice letters and code tests, and
the repetition detector the dataset builders use to drop looping responses."""
