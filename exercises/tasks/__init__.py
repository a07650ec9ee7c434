"""The students' files: each docstring holds a task and a hint; the stubs raise NotImplementedError."""
