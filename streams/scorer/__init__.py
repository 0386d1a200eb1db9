"""Page view -> recommendation: the scoring core, its runtime, two engines, REST, console."""
