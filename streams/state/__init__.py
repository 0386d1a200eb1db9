"""Redis: the one key layout, snapshots, serving pointers, histories, batch layers, lease."""
