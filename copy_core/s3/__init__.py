"""Pure S3 rules: which properties a copy carries, verification, overwrite, part arithmetic."""
