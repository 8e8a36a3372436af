"""The README's and docs' commands name what exists: files, subcommand options, config keys (cheap checks).

The commands themselves are run by the tests of each section (tests/test_readme_examples.py,
tests/test_extending.py, tests/test_quickstart.py, ...); these checks catch a renamed file or option
in every command the documentation shows, in a second or two.
"""

from __future__ import annotations

import importlib
import re
import shlex

import pytest

from tests.conftest import REPO

DOCS = [
    "README.md",
    *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md") if p.name != "results.md"),
]
# files the docs ask the reader to create (docs/extending.md), or that a download creates
CREATED_BY_THE_READER = {
    "configs/image/lifted_gelu_digits.yaml",
    "src/mlplab/models/vision/lifted_gelu.py",
    "data/fields/",
}
PATH = re.compile(r"(?<![\w./-])((?:configs|src|tests|benchmarks|docs|data)/[\w./{},-]+)")
# the training CLI's top-level keys (`mlplab fit --print_config`)
CLI_KEYS = {
    "config", "print_config", "seed_everything", "trainer", "model", "data", "checkpoint", "divergence",
    "throughput", "lr_monitor", "compile", "predictions", "summary", "watchdog", "ckpt_path", "weights_only",
}  # fmt: skip
TRAINING = {"fit", "validate", "test", "predict"}


def expand(path: str) -> list[str]:
    """``a/{b,c}_d`` -> ``a/b_d``, ``a/c_d`` (every brace group)."""
    match = re.search(r"\{([^}]*)\}", path)
    if match is None:
        return [path]
    return [
        p
        for part in match.group(1).split(",")
        for p in expand(path[: match.start()] + part + path[match.end() :])
    ]


def doc_paths() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for path in sorted(set(PATH.findall((REPO / doc).read_text()))):
            path = path.rstrip(".,:")
            if path not in CREATED_BY_THE_READER:
                found += [(doc, p) for p in expand(path)]
    return found


def test_every_repository_path_the_docs_name_exists():
    missing = [
        f"{doc}: {path}"
        for doc, path in doc_paths()
        if not (REPO / path).exists() and not (REPO / doc).parent.joinpath(path).exists()
    ]
    assert not missing, missing


def command_lines() -> list[tuple[str, list[str]]]:
    """Every `mlplab ...` / `python cli.py ...` / `python -m mlplab ...` line of the docs' bash blocks."""
    lines = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", (REPO / doc).read_text(), re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line.split(" #")[0])
                if words[:1] == ["torchrun"]:
                    words = words[words.index("-m") + 1 :]  # torchrun ... -m mlplab fit ...
                elif words[:2] in (["python", "cli.py"], ["python", "-m"]):
                    words = words[2:] if words[1] == "cli.py" else words[3:]
                elif words[:1] == ["mlplab"]:
                    words = words[1:]
                else:
                    continue
                lines.append((f"{doc}: {line.strip()}", words))
    return lines


def test_the_docs_show_commands():
    commands = {words[0] for _, words in command_lines()}
    assert {"fit", "test", "sweep", "analyze", "drop-layers", "prune"} <= commands


def test_training_commands_name_existing_recipes_and_known_keys():
    for where, words in command_lines():
        if words[0] not in TRAINING:
            continue
        configs = [words[i + 1] for i, w in enumerate(words) if w == "--config"]
        for config in configs:
            if config.startswith("configs/"):
                assert (REPO / config).is_file(), where
        for word in words[1:]:
            if word.startswith("--"):
                key = word[2:].split("=")[0].split(".")[0]
                assert key in CLI_KEYS, f"{where}: --{key} is not a key of the training CLI"


@pytest.mark.parametrize("command", ["analyze", "drop-layers", "prune", "sweep"])
def test_other_commands_accept_the_options_the_docs_give(command):
    from mlplab.analysis.command import build_parsers
    from mlplab.tools.sweep.command import build_parser as sweep_parser

    shown = [(where, words[1:]) for where, words in command_lines() if words[0] == command]
    assert shown, f"no `mlplab {command}` in the docs"
    for where, args in shown:
        args = ["/tmp/run" if a == "DIR" else a for a in args]
        if command == "sweep":  # what the sweep does not know goes to its runs: check the sweep's own options
            options = sweep_parser()._option_string_actions
            own = [a.split("=")[0] for a in args if a.startswith("--") and "." not in a.split("=")[0]]
            assert all(a in options for a in own), (where, [a for a in own if a not in options])
            assert (REPO / args[args.index("--config") + 1]).is_file(), where
            continue
        parser = build_parsers()[command]
        parser.parse_args(args)  # a missing argument or a wrong choice ends the test with its error line
        options = set(parser._option_string_actions)  # each option as spelled: argparse takes abbreviations
        for action in parser._actions:
            for subparser in (action.choices or {}) if isinstance(action.choices, dict) else {}:
                options |= set(action.choices[subparser]._option_string_actions)
        assert all(a in options for a in args if a.startswith("--")), where


def is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        return False
    return True


def test_every_python_name_the_docs_give_exists():
    """`mlplab.x.y` in backticks: a module, or an attribute of one (a class, a function, a method)."""
    missing = []
    for doc in DOCS:
        for name in sorted(set(re.findall(r"`(mlplab(?:\.\w+)+)", (REPO / doc).read_text()))):
            parts = name.split(".")
            found = next(i for i in range(len(parts), 0, -1) if is_module(".".join(parts[:i])))
            obj = importlib.import_module(".".join(parts[:found]))
            for part in parts[found:]:
                obj = getattr(obj, part, None)
            if obj is None:
                missing.append(f"{doc}: {name}")
    assert not missing, missing


def test_the_count_of_bad_inputs_the_docs_give_is_the_suites():
    from tests.reliability.test_bad_inputs import CASES

    for doc in ("README.md", "docs/reliability.md"):
        counts = re.findall(r"(\d+) bad inputs", (REPO / doc).read_text())
        assert counts and set(counts) == {str(len(CASES))}, f"{doc}: {counts}, the suite has {len(CASES)}"
