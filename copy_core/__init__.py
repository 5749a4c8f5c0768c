"""The shared core: what the control plane and the workers both import, and which imports neither.

The wire contract and copy options, the Redis run store and its Lua scripts, AWS credentials
and clients, error classification, and the pure S3 rules (object properties, verification,
overwrite decisions, part arithmetic).
"""
