"""Shared fixtures. Integration/e2e fixtures that need the real stack live in their folders."""
