"""Avro schemas: the contract between streamrec and the apps around it.

``<name>.avsc`` is the current version of each record; ``history/`` keeps every older
version so that events written with them can still be read.
"""
