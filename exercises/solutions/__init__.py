"""The solved exercises and the answers to their questions, for teachers. Leave this folder out of a hand-out."""
