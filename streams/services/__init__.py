"""The broker and Redis themselves: are they there, the embedded ones, child processes.

``probes`` answers whether the configured broker and Redis are reachable (every command
asks before it builds a client); ``embedded`` runs Tansu and Valkey on loopback for
``streamrec up | down | status``, the demo and the tests; ``embedded_broker_watch`` warns
a trainer when the embedded broker grows; ``processes`` starts and stops streamrec's own
commands as child processes.
"""
