"""Coverage-guided fuzzing of every parser of hostile bytes (atheris, libFuzzer).

Each ``fuzz_<target>.py`` holds one target: ``one_input(data)`` feeds the bytes to the
parser the way a process does, and ``ALLOWED`` names the errors that parser documents
(what its caller catches). Anything else, a hang or running out of memory is a finding.
``python -m tests.fuzz.fuzz_<target> [libFuzzer flags] [corpus dirs]`` runs one;
docs/fuzzing.md says how long and what to do with a finding.
"""
