"""How the code is laid out: the modules import each other in layers, from the scripts down to errors.py, with
no cycle; no script imports another for its helpers; README's map names every module; each module says what it
holds in its first docstring line."""

import ast
import re

from helpers import ROOT

# bottom to top: a module may import only those below it
LAYERS = ["errors", "configurator", "blocks", "model", "data", "processes", "common", "hardware", "run_folder",
          "settings", "train", "bench", "compare", "sample", "probe", "gpu_check", "plot_sweep"]
SCRIPTS = {"train", "bench", "compare", "sample", "probe", "gpu_check", "plot_sweep"}
SCRIPT_IMPORTS = {("bench", "train"): "it times the training step train.py runs",
                  ("gpu_check", "bench"): "it runs bench.py's parts"}


def own_imports(path):
    """The repository's modules (top-level names) that a file imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(LAYERS)


def module_files(name):
    """The files of a module: name.py, or every .py file of the package name/."""
    return [ROOT / f"{name}.py"] if (ROOT / f"{name}.py").exists() else sorted((ROOT / name).glob("*.py"))


def test_every_module_imports_only_those_below_it():
    assert {p.stem for p in ROOT.glob("*.py")} == set(LAYERS) - {"blocks", "data"}, "a module missing from LAYERS"
    for name in LAYERS:
        for path in module_files(name):
            for imported in own_imports(path) - {name}:
                if (name, imported) in SCRIPT_IMPORTS:
                    continue
                assert LAYERS.index(imported) < LAYERS.index(name), f"{path.name} imports {imported}, a layer above"
                assert not (name in SCRIPTS and imported in SCRIPTS), f"the script {name} imports the script {imported}"


def test_the_readme_map_names_every_module_and_each_says_what_it_holds():
    readme = (ROOT / "README.md").read_text()
    mapped = readme[readme.index("## Where things are"):readme.index("## Training")]
    for name in LAYERS:
        shown = f"{name}/" if (ROOT / name).is_dir() else f"{name}.py"
        assert f"[`{shown}`]" in mapped, f"README's map does not name {shown}"
        for path in module_files(name):
            docstring = ast.get_docstring(ast.parse(path.read_text()))
            assert docstring and re.match(r"\S", docstring), f"{path.relative_to(ROOT)} has no docstring"
