"""Following a run: waiting for it, its progress, its failure report."""
