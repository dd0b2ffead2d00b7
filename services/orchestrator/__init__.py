"""The orchestrator: the gRPC front door and the Celery app that runs episodes step by step."""
