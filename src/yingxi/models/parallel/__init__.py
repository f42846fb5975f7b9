"""Sequence parallelism shared by the model families: the shard plan, the process groups, the attention."""
