"""Orchestration of core logic and adapters; one module per user-facing capability."""
