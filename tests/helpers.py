"""Helpers the test files share."""

CODE = '''import os


def greet(name, greeting="Hello"):
    """Return a friendly greeting for `name`."""
    if not name:
        raise ValueError("name must not be empty")
    return f"{greeting}, {name}!"


class Counter:
    def __init__(self, start=0):
        self.value = start

    def increment(self, step=1):
        self.value += step
        return self.value
'''
NON_ASCII = "# café, naïve, Straße, 日本語, emoji 🎉 — ✓\nprint('ünïcödé', \"Ωμέγα\")\n"


def write_corpus(root, n_files=12):
    """A tiny package tree of Python files; every fourth one has non-ASCII text. Returns root."""
    for i in range(n_files):
        path = root / f"pkg{i % 3}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"# module {i}\n" + CODE.replace("greet", f"greet{i}") * (1 + i % 3)
        path.write_text(text + (NON_ASCII if i % 4 == 0 else ""), encoding="utf-8")
    return root
