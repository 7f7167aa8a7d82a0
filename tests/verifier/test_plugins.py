"""Plugins by entry points (verifier/plugins.py, docs/plugins.md).

The loader's rules run on throwaway distributions: a folder holding ``<name>.dist-info`` (its
METADATA and entry_points.txt) and the plugin's module, put on ``sys.path``, is what
``importlib.metadata`` reads for an installed distribution, so no environment is changed.

The example plugin (examples/verifier-example, installed by ``make test``) goes through the CLI,
pytest and Python doors here and the HTTP door in tests/api/test_plugin_door.py. Its absence is
``VERIFIER_DISABLE_PLUGINS=verifier-example`` in a child process: the loader then skips its entry
points exactly as if its distribution were not installed (the module is never imported), which a
test can set without uninstalling a package other processes share.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import verifier
from tests.conftest import ROOT
from verifier import codekey, plugins
from verifier.cli import app
from verifier.errors import SpecError
from verifier.spec import load_spec_text

EXAMPLE = ROOT / "examples" / "verifier-example"
EXAMPLE_SPEC = EXAMPLE / "specs" / "example.spec.yaml"
EXAMPLE_NAMES = {  # group -> the example's entry point in it (its pyproject.toml)
    "verifier.constructions": "padded_compact",
    "verifier.theorems": "PADDED",
    "verifier.measures": "subject_norm_spread",
    "verifier.checks": "ablation",
}


def example_installed() -> bool:
    """Whether the example plugin's distribution is installed (``make test`` installs it)."""
    found = plugins.entry_points("verifier.constructions")
    return any(p.distribution == "verifier-example" for p in found)


needs_example = pytest.mark.skipif(
    not example_installed(),
    reason="the example plugin is not installed: pip install -e examples/verifier-example "
    "(make test installs it)",
)

SPEC = """name: s
instance: {kind: bijection, entities: 8, relations: 2, seed: 0}
claims:
  - id: c
    check: construction
    construction: {name: NAME, code_dim: 8}
    expect: {accuracy: 1.0}
"""


def fake_distribution(
    root: Path, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]
) -> Path:
    """Write an installed-looking distribution ``name`` 1.0 under ``root``; return ``root``."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
            for group, eps in entry_points.items()
        )
    )
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    return root


@pytest.fixture
def fresh_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The loader as in a new process (nothing loaded yet); restored afterwards."""
    monkeypatch.setattr(plugins, "_RECORDS", {})
    monkeypatch.setattr(plugins, "_LOADED_GROUPS", set())
    plugins.forget_installed()
    yield
    monkeypatch.undo()  # sys.path first: then what is installed is read again
    plugins.forget_installed()


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_loader: None) -> Path:
    """A distribution ``broken-plugin`` whose construction ``hologram`` fails to import."""
    root = fake_distribution(
        tmp_path / "site",
        "broken-plugin",
        {"verifier.constructions": {"hologram": "broken_plugin_mod:HOLOGRAM"}},
        {"broken_plugin_mod": "raise ImportError('needs hologramlib, which is not installed')\n"},
    )
    monkeypatch.syspath_prepend(str(root))
    plugins.forget_installed()
    return root


def test_a_broken_plugin_is_recorded_and_only_specs_naming_it_fail(
    broken: Path, tmp_path: Path
) -> None:
    [record] = [p for p in plugins.records() if p.distribution == "broken-plugin"]
    assert (record.name, record.group, record.version, record.status) == (
        "hologram",
        "verifier.constructions",
        "1.0",
        "failed",
    )
    assert record.error == "ImportError: needs hologramlib, which is not installed"
    runner = CliRunner()
    listed = runner.invoke(app, ["plugins", "--json"])
    assert listed.exit_code == 1  # a plugin failed
    assert {"name": "hologram", "status": "failed"}.items() <= next(
        p for p in json.loads(listed.stdout) if p["name"] == "hologram"
    ).items()
    good, bad = tmp_path / "good.spec.yaml", tmp_path / "bad.spec.yaml"
    good.write_text(SPEC.replace("NAME", "geometric"))
    bad.write_text(SPEC.replace("NAME", "hologram"))
    common = ["--no-progress", "--no-cache"]
    ran = runner.invoke(app, ["check", str(good), *common])
    assert ran.exit_code == 0, ran.output
    refused = runner.invoke(app, ["check", str(bad), *common])
    assert refused.exit_code == 2, refused.output
    text = " ".join(refused.output.split())
    assert "construction 'hologram'" in text and "broken-plugin 1.0" in text
    assert "ImportError: needs hologramlib" in text


def test_a_claim_kind_of_a_broken_plugin_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_loader: None
) -> None:
    root = fake_distribution(
        tmp_path / "site",
        "broken-kinds",
        {"verifier.checks": {"sparkle": "broken_kinds_mod:Sparkle"}},
        {"broken_kinds_mod": "Sparkle = 1\n"},  # imports, but is no CheckKind
    )
    monkeypatch.syspath_prepend(str(root))
    plugins.forget_installed()
    text = SPEC.replace("check: construction", "check: sparkle")
    with pytest.raises(SpecError) as err:
        load_spec_text(text, "s.spec.yaml")
    assert err.value.key == "claims.0.check" and err.value.line == 4
    assert "claim kind 'sparkle' comes from plugin broken-kinds 1.0" in err.value.message
    assert "TypeError: expected a CheckKind subclass" in err.value.message


def test_a_measure_of_a_broken_plugin_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_loader: None
) -> None:
    from verifier.engine.runner import SpecRunner

    root = fake_distribution(
        tmp_path / "site",
        "broken-measures",
        {"verifier.measures": {"glow": "broken_measures_mod:glow"}},
        {"broken_measures_mod": "glow = 'not a function'\n"},
    )
    monkeypatch.syspath_prepend(str(root))
    plugins.forget_installed()
    text = (
        "name: s\ninstance: {kind: bijection, entities: 64, relations: 2, seed: 0}\nclaims:\n"
        "  - id: t\n    check: training\n    model: {d_model: 8, d_mlp: 16}\n"
        "    optim: {lr: 0.01, steps: 5}\n    expect: {glow: '>= 0'}\n"
    )
    spec = load_spec_text(text, "s.spec.yaml")  # the name is installed: the loader accepts it
    assert "glow" in spec.claim("t").measures(spec.instance)
    with pytest.raises(SpecError) as err:
        SpecRunner(spec).preflight()
    assert err.value.key == "t.expect.glow"
    assert "broken-measures 1.0" in err.value.message
    assert "TypeError: expected a measure function" in err.value.message
    unnamed = load_spec_text(text.replace("glow", "accuracy"), "s.spec.yaml")
    assert "glow" not in unnamed.claim("t").measures(unnamed.instance)  # not run, not reported


def test_disabling_a_distribution_hides_its_entry_points(
    broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "hologram" in {p.name for p in plugins.entry_points("verifier.constructions")}
    for value in ("broken-plugin", "Broken-Plugin, other", "all"):
        monkeypatch.setenv(plugins.DISABLE_ENV, value)
        assert "hologram" not in {p.name for p in plugins.entry_points("verifier.constructions")}


def test_a_plugins_version_and_source_join_the_verdict_key(
    broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is imported to key: the broken module never loads here."""
    with_plugin = (plugins.fingerprint(), codekey.engine_key("construction"))
    module = broken / "broken_plugin_mod.py"
    module.write_text(module.read_text() + "# edited\n")
    plugins.forget_installed()
    edited = (plugins.fingerprint(), codekey.engine_key("construction"))
    monkeypatch.setenv(plugins.DISABLE_ENV, "broken-plugin")
    without = (plugins.fingerprint(), codekey.engine_key("construction"))
    assert len({with_plugin, edited, without}) == 3
    assert with_plugin[1] is not None and "broken_plugin_mod" not in sys.modules


def test_every_group_is_wired_to_a_registrar() -> None:
    for group in plugins.GROUPS:
        assert callable(plugins._registrar(group)), group


# --- the example plugin ------------------------------------------------------------------------


@needs_example
def test_the_example_appears_in_every_listing() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["plugins", "--json"])
    found = {(p["group"], p["name"]): p for p in json.loads(listed.stdout)}
    for group, name in EXAMPLE_NAMES.items():
        p = found[(group, name)]
        assert (p["distribution"], p["version"], p["status"]) == (
            "verifier-example",
            "0.1.0",
            "loaded",
        )
    theorems = json.loads(runner.invoke(app, ["theorems", "--json"]).stdout)
    assert "PADDED" in [t["id"] for t in theorems]
    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    defs = schema["$defs"]
    assert "padded_compact" in defs["Construction"]["properties"]["name"]["enum"]
    assert "PADDED" in defs["BoundClaim"]["properties"]["theorem"]["anyOf"][0]["enum"]
    assert "subject_norm_spread" in defs["TrainingClaim"]["properties"]["expect"]["properties"]
    assert defs["AblationClaim"]["properties"]["check"]["const"] == "ablation"
    # its claim kind is keyed (so reused), over every module of the verifier
    assert codekey.engine_key("ablation") not in (None, codekey.engine_key("construction"))


@needs_example
def test_the_example_spec_passes_through_the_python_cli_and_pytest_doors(tmp_path: Path) -> None:
    """verifier.check verifies every claim; the CLI (its typer app, in this process) and pytest (a
    process of its own, loading the plugin afresh) then reuse its verdicts by the keys they
    derive themselves, the plugin's fingerprint among them."""
    cache, report = tmp_path / "cache", tmp_path / "cli.json"
    [python] = verifier.check(EXAMPLE_SPEC, cache_dir=cache, reuse=False)
    verdicts = {r.key: r.status for r in python.results}
    assert verdicts == dict.fromkeys(("padded", "padded-size", "mlp-needed", "trained"), "passed")
    assert python.results[-1].measured["subject_norm_spread"] >= 1  # the plugin's measure ran
    done = CliRunner().invoke(
        app, ["check", str(EXAMPLE_SPEC), "--no-progress", "--cache-dir", str(cache), "--json",
              str(report)],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    cli = [r for rep in json.loads(report.read_text()) for r in rep["results"]]
    assert {r["key"]: r["status"] for r in cli} == verdicts and all(r["reused"] for r in cli)
    pytest_door = subprocess.run(
        [
            sys.executable, "-m", "pytest", str(EXAMPLE / "specs"), "-q", "-p", "no:cacheprovider",
            "--verifier-cache-dir", str(cache),
        ],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert pytest_door.returncode == 0, pytest_door.stdout[-3000:]
    assert "4 passed" in pytest_door.stdout


ABSENT = """import sys
from typer.testing import CliRunner
from verifier.cli import app
for spec in sys.argv[1:]:
    done = CliRunner().invoke(app, ["check", spec, "--no-progress", "--no-cache"])
    print(f"exit {done.exit_code}:", " ".join(done.output.split()))
"""


@needs_example
def test_without_the_example_a_spec_naming_it_exits_2_naming_it(tmp_path: Path) -> None:
    """One child process in which the example is hidden (VERIFIER_DISABLE_PLUGINS), running the
    CLI on its spec and on a spec naming only its construction."""
    alone = tmp_path / "padded.spec.yaml"
    alone.write_text(SPEC.replace("NAME", "padded_compact"))
    done = subprocess.run(
        [sys.executable, "-c", ABSENT, str(EXAMPLE_SPEC), str(alone)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, plugins.DISABLE_ENV: "verifier-example"},
    )  # fmt: skip
    example, construction = done.stdout.splitlines()
    for line, names in (
        (example, ("unknown theorem 'PADDED'", "'ablation'", "subject_norm_spread")),
        (construction, ("construction 'padded_compact'",)),
    ):
        assert line.startswith("exit 2:"), line
        assert all(name in line for name in names), line
        assert "see `verifier plugins`" in line


@needs_example
def test_the_api_process_serves_the_example_theorem_without_torch() -> None:
    """GET /v1/theorems loads the plugins' theorems in the API process: the example's theorem
    module imports no torch (docs/plugins.md asks that of every theorem module)."""
    code = (
        "import sys, api.main\n"
        "from api.routes.meta import theorems\n"
        "print('PADDED' in [t['id'] for t in theorems()], "
        "[m for m in ('torch', 'cvxpy') if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.stdout.strip() == "True []", done.stdout + done.stderr
