"""The FastAPI service: jobs, job store, workers, scheduler and dashboard."""
