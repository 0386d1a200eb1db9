"""Replay: a fresh model trained on a time range of the log, judged, maybe published."""
