"""Side-by-side benchmark of s3fanout and its peers (s5cmd, rclone, aws s3 cp, boto3).

``python -m bench --help``; see bench/README.md. Keep this module free of imports: bench/plot.py
runs in the separate .venv-bench environment, which has matplotlib but not this project.
"""
