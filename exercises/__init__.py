"""Classroom exercises, one or more per step of the ladder: see exercises/README.md."""
