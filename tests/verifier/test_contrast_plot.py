"""The headline contrast on the report page (verifier/render/contrast.py)."""

from __future__ import annotations

import math

from api.report_page import render_page
from api.store import Job
from verifier.engine.report import ClaimResult, Report
from verifier.render.contrast import contrast_curves, contrast_png, lb1_bits

PNG = b"\x89PNG\r\n\x1a\n"


def _point(claim: str, n: int, width: int, trainable: int) -> ClaimResult:
    return ClaimResult(
        key=f"{claim}[N={n}]",
        claim_id=claim,
        check="training",
        point={"N": n},
        status="passed",
        measured={"minimum": width, "trainable_params": trainable, "n_facts": 2 * n},
        evidence={"search": {"field": "d_mlp", "direction": "smallest"}},
    )


def _report() -> Report:
    ns = (32, 64, 128, 256)
    results = [_point("associative-width", n, n // 8, 49 * (n // 8)) for n in ns]
    results += [_point("geometric-width", n, 1, 24 * n + 200) for n in ns]
    results.append(
        ClaimResult(
            key="associative-width[growth]",
            claim_id="associative-width",
            check="training",
            status="passed",
            evidence={
                "growth": {"measure": "minimum", "over": "N", "law": "linear"},
                "groups": [
                    {
                        "x": [32, 64, 128, 256],
                        "y": [4, 8, 16, 32],
                        "fits": [{"law": "linear", "a": 0.0, "b": 0.125}],
                    }
                ],
            },
        )
    )
    return Report(spec="contrast", spec_hash="0" * 64, verifier_version="0", results=results)


def test_the_curves_carry_the_searched_widths_and_bits_per_trainable_parameter() -> None:
    curves = {c.claim_id: c for c in contrast_curves(_report())}
    assoc, geo = curves["associative-width"], curves["geometric-width"]
    assert assoc.points == [(32, 4), (64, 8), (128, 16), (256, 32)]
    assert geo.points == [(n, 1) for n in (32, 64, 128, 256)]
    assert assoc.law == ("linear", 0.0, 0.125) and geo.law is None
    n, bits = assoc.bits[-1]
    assert n == 256
    assert math.isclose(bits, 2 * math.lgamma(257) / math.log(2) / (49 * 32))
    assert math.isclose(lb1_bits(256, 2), 2 * math.lgamma(257) / math.log(2))
    assert contrast_png(_report()).startswith(PNG)  # type: ignore[union-attr]


def test_one_searched_sweep_is_not_a_contrast() -> None:
    report = _report()
    report.results = [r for r in report.results if r.claim_id == "geometric-width"]
    assert contrast_png(report) is None


def test_the_report_page_shows_the_contrast_plot() -> None:
    report = _report()
    job = Job(
        seq=1, id="j", status="passed", spec_name="contrast", spec_hash="0" * 64,
        verifier_version="0", spec_text="", created_at="", started_at=None, finished_at=None,
        progress=1.0, progress_key="", progress_message="", attempts=1, cancel_requested=False,
        reused=False, message="", report=report.model_dump(mode="json"), worker_pid=None,
        run_token=None, claimed_epoch=None,
    )  # fmt: skip
    page = render_page(job)
    assert "contrast: searched MLP width and bits per trainable parameter against N" in page
    assert page.count("<img class='plot'") >= 2  # the contrast and the per-claim sweep plots
