"""Reliability tests: database faults, load and scale, bad input and concurrency races."""
