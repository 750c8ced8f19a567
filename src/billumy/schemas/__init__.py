"""Wire models: what clients send and receive, nothing else."""
