"""Where a run's keys come from: key ranges of a prefix, manifests, one key."""
