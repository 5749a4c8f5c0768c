"""The subcommands of ``s3fanout``, one module each."""
