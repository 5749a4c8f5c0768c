"""Local stand-ins for production services (redis-server, S3 endpoints, worker processes).

Used by the demo, the tests and the benchmarks; never shipped in the package.
"""
