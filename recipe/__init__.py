"""The recipe's data work after the jobs: datasets (Hint-RFT and RFT builders, review,
export) and evaluation (pass@1, avg@k, pass@k from a job's results).

Reads a job's Parquet results (`services.orchestrator.results`) and writes dataset
directories the training stack (`training/`) reads. The CLI is `startctl dataset` and
`startctl eval`.
"""
