"""Blob stores: the interface and its two implementations."""
