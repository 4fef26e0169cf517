"""Workers: the runtime loop, the executor of one job, process identity, launching."""
