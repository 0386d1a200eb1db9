"""The page catalog: reading and writing the compacted ``pages`` topic."""
