"""The ``rlft`` subcommands that are not training stages: pairs, pipeline, merge, rewards (score_samples), ab."""
