"""What changed since an earlier run: a ``--json`` report compared with this one, as Markdown.

Results are matched by ``spec::key``. A result is *newly failing* when it was ok (passed or xfailed)
and is not now, *newly passing* the other way round; results ok in both runs whose expected figures
moved beyond their tolerance are *moved* (an equality's own ``tol``, else
:data:`verifier.spec.expectations.DEFAULT_TOL`, absolute and relative); *added* and *removed* are
the keys in one run only. :func:`markdown` writes that comparison and the verdict table for a CI job
summary or a pull-request comment. None of it changes an exit code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from verifier.engine.report import ClaimResult, Report, fmt, key_measures
from verifier.errors import VerifierError
from verifier.spec.expectations import DEFAULT_TOL


@dataclass(frozen=True)
class Moved:
    """One expected figure that changed between the runs."""

    measure: str
    old: Any
    new: Any
    tol: float


@dataclass(frozen=True)
class Change:
    """One result present in both runs whose verdict or figures changed."""

    name: str  # spec::key
    old: ClaimResult
    new: ClaimResult
    moved: list[Moved] = field(default_factory=list)


@dataclass
class Comparison:
    """This run against the baseline."""

    newly_failing: list[Change] = field(default_factory=list)
    newly_passing: list[Change] = field(default_factory=list)
    moved: list[Change] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing changed."""
        return not (
            self.newly_failing or self.newly_passing or self.moved or self.added or self.removed
        )


def load_reports(path: str | Path) -> list[Report]:
    """Reports written by ``verifier check --json``.

    Raises:
        VerifierError: the file is missing or is not such a report.
    """
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, list):
            raise ValueError(f"a JSON list of reports, got {type(data).__name__}")
        return [Report.model_validate(r) for r in data]
    except OSError as exc:
        raise VerifierError(f"--baseline {path}: cannot read it: {exc.strerror}") from None
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise VerifierError(
            f"--baseline {path}: expected the output of `verifier check --json`, got {first}"
        ) from None


def _by_name(reports: Iterable[Report]) -> dict[str, ClaimResult]:
    return {f"{report.spec}::{r.key}": r for report in reports for r in report.results}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def moved_figures(old: ClaimResult, new: ClaimResult) -> list[Moved]:
    """The new result's expected figures that moved beyond their tolerance since ``old``."""
    moved = []
    for e in new.expectations:
        before, after = old.measured.get(e.measure), new.measured.get(e.measure)
        tol = e.tol if e.tol is not None else DEFAULT_TOL
        a, b = _number(before), _number(after)
        if a is not None and b is not None:
            same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=tol, abs_tol=tol)
        else:
            same = before == after
        if not same:
            moved.append(Moved(e.measure, before, after, tol))
    return moved


def compare(old: Iterable[Report], new: Iterable[Report]) -> Comparison:
    """This run (``new``) against the baseline (``old``)."""
    before, after = _by_name(old), _by_name(new)
    out = Comparison(
        added=[n for n in after if n not in before],
        removed=[n for n in before if n not in after],
    )
    for name, result in after.items():
        if name not in before:
            continue
        was = before[name]
        change = Change(name, was, result, moved_figures(was, result))
        if was.ok and not result.ok:
            out.newly_failing.append(change)
        elif not was.ok and result.ok:
            out.newly_passing.append(change)
        elif result.ok and change.moved:
            out.moved.append(change)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _figures(change: Change) -> str:
    figures = [f"{m.measure}: {fmt(m.old)} → {fmt(m.new)}" for m in change.moved]
    return _cell("; ".join(figures) or key_measures(change.new) or change.new.message[:80])


def counts(reports: Iterable[Report]) -> str:
    """``3 specs, 12 claims: 10 passed, 2 failed (5 reused)``."""
    reports = list(reports)
    results = [r for report in reports for r in report.results]
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in by_status.items()) or "nothing selected"
    reused = sum(r.reused for r in results)
    tail = f" ({reused} reused)" if reused else ""
    return f"{len(reports)} specs, {len(results)} claims: {summary}{tail}"


def _changes_markdown(comparison: Comparison, baseline: str) -> list[str]:
    lines = [f"### Since the baseline (`{baseline}`)", ""]
    if comparison.empty:
        return [*lines, "No verdict or expected figure changed.", ""]
    sections = (
        ("Newly failing", comparison.newly_failing),
        ("Newly passing", comparison.newly_passing),
        ("Figures moved beyond their tolerance", comparison.moved),
    )
    for title, changes in sections:
        if not changes:
            continue
        lines += [f"**{title} ({len(changes)})**", "", "| claim | was | now | figures |"]
        lines.append("|---|---|---|---|")
        lines += [
            f"| `{_cell(c.name)}` | {c.old.status} | {c.new.status} | {_figures(c)} |"
            for c in changes
        ]
        lines.append("")
    for title, names in (("Added", comparison.added), ("Removed", comparison.removed)):
        if names:
            lines += [f"**{title} ({len(names)})**: " + ", ".join(f"`{n}`" for n in names), ""]
    return lines


def _when(result: ClaimResult) -> str:
    if result.reused:
        return f"reused ({(result.verified_at or '')[:10]})"
    return f"{result.duration_s:.2f}s"


def markdown(
    reports: list[Report], comparison: Comparison | None = None, baseline: str = ""
) -> str:
    """The run as Markdown: counts, the comparison (if any), failures, the verdict table."""
    failing = [r for report in reports for r in report.results if not r.ok]
    lines = ["## Verification: " + ("passed" if not failing else "failed"), "", counts(reports)]
    lines.append("")
    if comparison is not None:
        lines += _changes_markdown(comparison, baseline)
    if failing:
        lines += ["### Not passing", ""]
        for r in failing:
            lines += ["```", r.failure_text(), "```"]
        lines.append("")
    lines += ["### Verdicts", "", "| spec | claim | check | method | status | measures | time |"]
    lines.append("|---|---|---|---|---|---|---|")
    for report in reports:
        for r in report.results:
            measures = key_measures(r) if r.measured else r.message[:80]
            lines.append(
                f"| {_cell(report.spec)} | `{_cell(r.key)}` | {r.check} | {r.method or '-'} "
                f"| {r.status} | {_cell(measures)} | {_when(r)} |"
            )
    return "\n".join(lines) + "\n"
