"""``pytest specs/``: every ``*.spec.yaml`` is a file of items, one per claim (per sweep point).

Registered through the ``pytest11`` entry point, so it works in a user's own repository once the
package is installed. A spec is validated at collection (a bad spec is a collection error with
``file:line``); claims run in ``runtest`` through :class:`verifier.engine.runner.SpecRunner`, shared
by the file's items, so dependencies run once. Items carry a marker per claim kind (``-m "not
training"``), and ``xfail`` claims are reported as pytest xfails.

Trained models and verdicts are cached in ``.verifier/artifacts`` under pytest's rootdir (where
``.pytest_cache`` lives), the folder ``verifier check`` uses when run from there;
``--verifier-cache-dir DIR`` puts it elsewhere, ``--verifier-no-cache`` turns it off, and
``--verifier-no-reuse`` verifies every claim again instead of reusing stored verdicts.

With pytest-xdist, ``pytest specs -n 2`` (no ``--dist``) balances the load as xdist's default
does, except that the items of one spec go to one worker, where they share its runner: a claim
and the claims it depends on never run twice. Each worker takes ``cpus // workers`` torch
threads, so workers do not oversubscribe the cores. Items also carry ``xdist_group`` (the spec's
path), so ``--dist loadgroup`` (or ``loadfile``) keeps them together as well; an explicit
``--dist load`` is left as given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from verifier import plugins
from verifier.checks import REGISTRY
from verifier.checks.base import PLUGIN_GROUP
from verifier.engine.report import ClaimResult
from verifier.engine.runner import SpecRunner
from verifier.engine.session import DEFAULT_CACHE_DIR
from verifier.engine.verdicts import VerdictStore
from verifier.errors import LimitExceeded, SpecError, VerifierError
from verifier.limits import limits_from_environment
from verifier.spec import load_spec_file
from verifier.spec.discover import SPEC_SUFFIX, in_full_folder


class SpecFailure(Exception):
    """A claim did not pass; carries its result for ``repr_failure``."""

    def __init__(self, result: ClaimResult) -> None:
        super().__init__(result.status)
        self.result = result


class SpecCollectionError(Exception):
    """A spec could not be loaded."""


def cache_dir_of(config: pytest.Config) -> str | None:
    """The artifacts folder of this session: None with ``--verifier-no-cache``."""
    if config.getoption("--verifier-no-cache"):
        return None
    chosen = config.getoption("--verifier-cache-dir")  # relative: to the invocation folder
    if chosen:
        return str(config.invocation_params.dir / Path(chosen))
    return str(config.rootpath / DEFAULT_CACHE_DIR)


def verdicts_of(config: pytest.Config) -> VerdictStore | None:
    """The verdict store of this session, in the cache folder (None with no cache)."""
    folder = cache_dir_of(config)
    if folder is None:
        return None
    return VerdictStore(folder, read=not config.getoption("--verifier-no-reuse"))


def _dist_given(config: pytest.Config) -> bool:
    """Whether the user chose an xdist distribution mode (command line, addopts, environment)."""
    words = [*config.invocation_params.args, *config.getini("addopts")]
    words += os.environ.get("PYTEST_ADDOPTS", "").split()
    return any(w == "-d" or w.startswith("--dist") for w in words)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("verifier")
    group.addoption(
        "--verifier-full",
        action="store_true",
        default=False,
        help="also collect specs under folders named full/ (large specs)",
    )
    group.addoption(
        "--verifier-cache-dir",
        default=None,
        metavar="DIR",
        help="artifacts folder for trained checkpoints (default: <rootdir>/.verifier/artifacts)",
    )
    group.addoption(
        "--verifier-no-cache",
        action="store_true",
        default=False,
        help="no cache folder: retrain every model, verify every claim, store nothing",
    )
    group.addoption(
        "--verifier-no-reuse",
        action="store_true",
        default=False,
        help="verify every claim again instead of reusing stored verdicts (the fresh verdicts "
        "are stored)",
    )


def pytest_configure(config: pytest.Config) -> None:
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:  # an xdist worker: its share of the cores, as --jobs workers get theirs
        from verifier.engine.executors import set_threads

        set_threads(max(1, (os.cpu_count() or 1) // int(workers)))
    plugin_kinds = {p.name for p in plugins.entry_points(PLUGIN_GROUP)}  # named, not imported
    for kind in sorted({*REGISTRY, *plugin_kinds}):
        config.addinivalue_line("markers", f"{kind}: verifier claims of kind {kind}")
    config.addinivalue_line("markers", "full: large specs under specs/**/full/")


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> SpecFile | None:
    if not file_path.name.endswith(SPEC_SUFFIX):
        return None
    config = parent.config
    if not config.getoption("--verifier-full") and _in_full_folder(config, file_path):
        return None
    return SpecFile.from_parent(parent, path=file_path)


def _in_full_folder(config: pytest.Config, file_path: Path) -> bool:
    """The ``full/`` rule of ``verifier check`` (:func:`in_full_folder`), from every argument
    that names the file or a folder above it: in a full folder below each of them."""
    named = [(config.invocation_params.dir / a.split("::")[0]).resolve() for a in config.args]
    above = [p for p in named if p == file_path or p in file_path.parents]
    return all(in_full_folder(file_path, p) for p in above or [Path(file_path.anchor)])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N`` without ``--dist``: xdist's load balancing, one spec's items on one worker."""
    if config.getvalue("dist") != "load" or _dist_given(config):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SpecScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """Each spec file is one unit of work; every other item is its own."""

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.endswith(SPEC_SUFFIX) else nodeid

    return SpecScheduling(config, log)


class SpecFile(pytest.File):
    """One spec file."""

    runner: SpecRunner | None = None

    def collect(self) -> Iterator[SpecItem]:
        try:
            limits = limits_from_environment()
            spec = load_spec_file(self.path, max_bytes=limits.max_spec_bytes)
            runner = SpecRunner(
                spec, limits, cache_dir=cache_dir_of(self.config), verdicts=verdicts_of(self.config)
            )
            runner.preflight()
        except (SpecError, LimitExceeded, VerifierError) as exc:
            raise SpecCollectionError(str(exc)) from None
        self.runner = runner
        in_full = in_full_folder(self.path, self.config.rootpath)
        group = None
        if self.config.pluginmanager.hasplugin("xdist"):
            group = pytest.mark.xdist_group(self.nodeid.split("::")[0])  # the spec's path
        for claim in spec.claims:
            line = spec.source.claim_lines.get(claim.id)
            for key in runner.claim_keys(claim.id):  # the points, then claim-id[growth]
                item = SpecItem.from_parent(self, name=f"{spec.name}::{key}", key=key, line=line)
                item.add_marker(getattr(pytest.mark, claim.check_kind()))
                if in_full:
                    item.add_marker(pytest.mark.full)
                if group is not None:
                    item.add_marker(group)
                reason = runner.xfail_reason(claim.id, key)
                if reason:
                    item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
                yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SpecCollectionError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class SpecItem(pytest.Item):
    """One claim (or sweep point)."""

    def __init__(self, *, key: str, line: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = key
        self.line = line

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, SpecFile) and parent.runner is not None
        result = parent.runner.result(self.key)
        self.user_properties.append(("status", result.status))
        if result.reused:
            self.user_properties.append(("reused", result.verified_at or ""))
        if result.status not in ("passed", "xpassed"):
            # xfailed results raise too: pytest's own xfail marker turns them into xfails
            raise SpecFailure(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SpecFailure):
            return excinfo.value.result.failure_text()
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, (self.line - 1) if self.line else None, self.name
