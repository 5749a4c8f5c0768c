"""The copy paths: one CopyObject (threaded or on the CRT fast lane), multipart, split, stream."""
