"""The online trainer: learn every page view once, publish signed snapshots, resume."""
