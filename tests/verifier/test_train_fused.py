"""The fused training step (verifier/train/fused.py) against the autograd reference, in float64,
and the accuracy read on a cadence (window with back-off) against every step."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.train import (
    OptimGroup,
    StackedForward,
    TrainConfig,
    TrainResult,
    TrainTask,
    fact_task,
    initial_weights,
    query_task,
)
from verifier.train import fused as fused_module
from verifier.train.fused import FusedStep
from verifier.train.loop import (
    _examples,
    _loss_and_correct,
    _optimizers,
    _stack,
    _train_stacked,
    lr_factor,
    reference_step,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py

FACTS = [fact_task(BijectionFacts(24, 3, seed=s)) for s in (0, 1)]
COT = [query_task(ChainFacts(12, 2, 2, seed=s), cot=True) for s in (0, 1)]
BASE = TrainConfig(d_model=8, d_mlp=16, n_heads=2, optimizer="adam", lr=1e-2, steps=10)
PEER = TrainConfig(
    d_model=8,
    d_mlp=8,
    lr=3e-2,
    attention="none",
    unit_norm=("W_E", "W_U"),
    freeze=("W_E", "W_U", "W_pos", "b_out"),
    init=(("W_pos", 0.0),),
)
OPTIONS: dict[str, tuple[TrainConfig, list[TrainTask]]] = {
    "learned-adam": (BASE, FACTS),
    "learned-adam-l2": (replace(BASE, weight_decay=0.05), FACTS),
    "adamw-decay": (replace(BASE, optimizer="adamw", weight_decay=0.1), FACTS),
    "sgd-momentum-decay": (
        replace(BASE, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=3e-3),
        FACTS,
    ),
    "sgd-no-momentum": (replace(BASE, optimizer="sgd", lr=0.1, momentum=0.0), FACTS),
    "uniform-groups-per-subject": (
        replace(
            BASE,
            optimizer="adamw",
            weight_decay=0.1,
            attention="uniform",
            init=(("W_E", 0.01),),
            groups=(("W_E", OptimGroup("sgd", 0.1, 0.9, 3e-3, True)),),
        ),
        FACTS,
    ),
    "mixed-lrs-in-one-kind": (
        replace(
            BASE,
            optimizer="adamw",
            weight_decay=0.01,
            groups=(
                ("W_in", OptimGroup(lr=3e-2, weight_decay=0.2)),
                ("W_U", OptimGroup(lr=1e-3)),
                ("W_O", OptimGroup("sgd", 0.05, 0.5, 0.0)),
                ("W_V", OptimGroup("sgd", 0.02, 0.8, 1e-2)),
            ),
        ),
        FACTS,
    ),
    "attention-none-peer": (PEER, FACTS),
    "freeze-unit-norm-learned": (
        replace(BASE, unit_norm=("W_U",), freeze=("W_U", "W_E", "b_in")),
        FACTS,
    ),
    "freeze-attention-only": (replace(BASE, freeze=("W_Q", "W_K", "W_V", "W_O")), FACTS),
    "warmup-cosine": (replace(BASE, warmup=2, schedule="cosine", steps=6), FACTS),
    "linear-schedule": (replace(BASE, schedule="linear", steps=5), FACTS),
    "cot-learned": (replace(BASE, n_heads=1), COT),
    "cot-uniform": (replace(BASE, attention="uniform"), COT),
    "cot-none": (replace(BASE, attention="none"), COT),
    "one-replicate": (replace(BASE, d_head=3), FACTS[:1]),
}


def _tight(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Equal to 1e-10 of the larger tensor's scale (float64: the two differ by rounding)."""
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-30)
    gap = float((a - b).abs().max())
    assert gap <= 1e-10 * scale, f"{what}: max gap {gap:.3g} at scale {scale:.3g}"


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("batch", [None, 20], ids=["full", "minibatch"])
def test_fused_steps_equal_the_autograd_reference_in_float64(
    option: str, batch: int | None
) -> None:
    cfg, tasks = OPTIONS[option]
    seeds = list(range(len(tasks)))
    ref = _stack(tasks, cfg, seeds, None, torch.float64)
    mine = {k: v.detach().clone() for k, v in ref.items()}
    per_subject = not cfg.frozen("W_E") and cfg.group("W_E")[4]
    optimizers = _optimizers(ref, cfg)
    forward = StackedForward(tasks[0], cfg)
    fused = FusedStep(tasks[0], cfg, mine, per_subject)
    tokens, targets = _examples(tasks)
    trained = [name for name, w in ref.items() if w.requires_grad]
    assert trained and set(trained) == set(fused.grads)
    for step in range(4):
        if batch is not None:  # a different subset of rows each step
            rows = torch.arange(step, step + batch) % tokens.shape[1]
            tok, tgt = tokens[:, rows], targets[:, rows]
        else:
            tok, tgt = tokens, targets
        loss_ref, ok_ref = _loss_and_correct(forward(ref, tok), tgt)
        log_sum, bound = fused.forward_backward(tok, tgt)
        _tight(-log_sum / tgt[0].numel(), loss_ref.detach(), f"{option} step {step} loss")
        _tight(fused.exact_loss() / tgt[0].numel(), loss_ref.detach(), f"{option} exact loss")
        right = ok_ref.sum(dim=1)
        assert torch.equal(fused.exact_correct(), right)
        assert bool((bound >= right).all())  # the screen bounds the rows right from above
        factor = lr_factor(step, cfg)
        scale = tasks[0].n_entities if per_subject else None
        reference_step(optimizers, ref, loss_ref.sum(), factor, scale)
        for name in trained:
            grad = ref[name].grad
            assert grad is not None
            _tight(fused.grads[name], grad, f"{option} step {step} d{name}")
        fused.update(factor)
        for name, w in ref.items():
            _tight(mine[name], w.detach(), f"{option} step {step} {name}")
    moved = [n for n in trained if not torch.equal(mine[n], _stack(tasks, cfg, seeds, None)[n])]
    assert moved, "no trained weight moved"
    if option == "attention-none-peer" and batch is None:  # steps 1-3 ran the bound closure
        assert fused._fixed is not None


def _same_runs(a: list[TrainResult], b: list[TrainResult], exact: bool) -> None:
    for x, y in zip(a, b, strict=True):
        assert (x.steps_to_perfect, x.steps, x.stopped_early) == (
            y.steps_to_perfect,
            y.steps,
            y.stopped_early,
        )
        rows = {step: acc for step, _, acc in y.history}
        assert x.history[-1][0] == y.history[-1][0] == x.steps
        assert all(rows[step] == acc for step, _, acc in x.history)  # on y's rows
        for p, q in zip(x.model.parameters(), y.model.parameters(), strict=True):
            if exact:
                assert torch.equal(p, q)
            else:
                torch.testing.assert_close(p, q, rtol=0, atol=1e-4)


WHOLE = replace(BASE, d_model=16, d_mlp=32, optimizer="adamw", lr=3e-2, steps=400, stop_loss=0.5)


@pytest.mark.parametrize(
    ("batch", "share"), [(None, 1.0), (None, 0.9), (24, 1.0)], ids=["full", "stop-0.9", "minibatch"]
)
def test_fused_and_reference_runs_reach_perfect_at_the_same_step(
    batch: int | None, share: float
) -> None:
    """Whole runs in float64: the first perfect step, the stop and the history agree (the
    stop at a share below 1 is read through the host screen's topk)."""
    cfg = replace(WHOLE, batch_size=batch, eval_every=5, stop_accuracy=share)
    seeds = [0, 1]
    fused = _train_stacked(FACTS, cfg, seeds, None, None, dtype=torch.float64)
    ref = _train_stacked(FACTS, cfg, seeds, None, None, engine="reference", dtype=torch.float64)
    assert all(r.stopped_early and (r.steps_to_perfect is not None or share < 1) for r in fused)
    if share < 1:  # the stop came before the first perfect step, at an accuracy >= share
        assert all(share <= r.final_accuracy < 1 for r in fused)
    _same_runs(fused, ref, exact=False)


@pytest.mark.parametrize("window", [5, 16, 64])
def test_a_sparse_accuracy_read_backs_off_to_the_first_perfect_step(window: int) -> None:
    """Reading the accuracy every ``window`` steps (the GPU cadence) gives every-step results:
    the replicates stop at different steps, each inside a window, and the replay restores
    their weights at that step bitwise (the CPU runs the same kernels again). The third
    replicate runs to the step budget."""
    tasks = [fact_task(BijectionFacts(24, 3, seed=s)) for s in (0, 1, 2)]
    every = _train_stacked(tasks, WHOLE, [0, 1, 2], None, None, window=1)
    sparse = _train_stacked(tasks, WHOLE, [0, 1, 2], None, None, window=window)
    stops = {r.steps for r in every if r.stopped_early}
    assert len(stops) == 2 and not every[2].stopped_early  # two stops, at different steps
    assert any((s + 1) % window for s in stops)  # at least one inside a window
    _same_runs(every, sparse, exact=True)


def test_a_run_to_the_budget_reads_the_last_step_on_any_cadence() -> None:
    cfg = replace(WHOLE, steps=23, stop_loss=-1.0)
    every = _train_stacked(FACTS, cfg, [0, 1], None, None, window=1)
    sparse = _train_stacked(FACTS, cfg, [0, 1], None, None, window=5)
    assert all(r.steps == 23 and not r.stopped_early for r in every)
    _same_runs(every, sparse, exact=True)


def test_the_example_order_reaches_the_fused_step(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = replace(WHOLE, steps=30, stop_loss=-1.0)
    canonical = _train_stacked(FACTS, cfg, [0, 1], None, None, dtype=torch.float64)
    monkeypatch.setenv("VERIFIER_TRAIN_ORDER", "3")
    permuted = _train_stacked(FACTS, cfg, [0, 1], None, None, dtype=torch.float64)
    for a, b in zip(canonical, permuted, strict=True):  # the same sums in another order
        for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-5)


def test_the_device_type_enters_the_checkpoint_and_verdict_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from verifier.engine import verdicts
    from verifier.train import run_key

    def keys() -> tuple[str, str]:
        point = verdicts.point_key("training", {"id": "c"}, {"kind": "bijections"}, {}, {}, "e")
        return run_key({"kind": "bijections"}, WHOLE, 1), point

    monkeypatch.setenv("VERIFIER_DEVICE", "cpu")
    on_cpu = keys()
    monkeypatch.setattr("verifier.train.device_type", lambda: "cuda")
    monkeypatch.setattr("verifier.engine.verdicts.device_type", lambda: "cuda")
    on_gpu = keys()
    assert on_cpu[0] != on_gpu[0] and on_cpu[1] != on_gpu[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from verifier.errors import VerifierError
    from verifier.train import train

    monkeypatch.setenv("VERIFIER_DEVICE", "cuda")
    with pytest.raises(VerifierError, match="VERIFIER_DEVICE=cuda"):
        train(FACTS[0], replace(WHOLE, steps=2))
    monkeypatch.setenv("VERIFIER_DEVICE", "cpu")
    assert train(FACTS[0], replace(WHOLE, steps=2)).steps <= 2


def test_an_underflowing_probability_still_gives_the_finite_loss() -> None:
    """A huge W_U puts some p_t at exactly 0 in float32: the loss read then comes from
    log_softmax, as the reference's cross-entropy, not inf."""
    cfg = replace(WHOLE, steps=1, init=(("W_U", 3e3),))
    fused = _train_stacked(FACTS, cfg, [0, 1], None, None)
    ref = _train_stacked(FACTS, cfg, [0, 1], None, None, engine="reference")
    for a, b in zip(fused, ref, strict=True):
        loss, expected = a.history[0][1], b.history[0][1]
        assert math.isfinite(loss) and expected > 100  # far past exp's float32 range
        assert loss == pytest.approx(expected, rel=1e-5)
        assert a.peak_loss == pytest.approx(b.peak_loss, rel=1e-5)


@pytest.mark.parametrize("option", ["learned-adam", "attention-none-peer", "cot-uniform"])
def test_the_host_read_decides_as_the_count_against_all_and_the_stop(option: str) -> None:
    """forward_backward_read's bound (a topk of the smallest p_t, or the count when that is
    many) decides ``>= n`` and ``>= need`` as the screen's count does, and bounds the rows
    right; its sums of log p_t are forward_backward's."""
    cfg, tasks = OPTIONS[option]
    seeds = list(range(len(tasks)))
    tokens, targets = _examples(tasks)
    n = tokens.shape[1]
    fused = FusedStep(tasks[0], cfg, _stack(tasks, cfg, seeds, None, torch.float64), False)
    counts = set()
    ruled_out = 0  # reads where the smallest rows alone ruled the count out
    for steps in range(0, 121, 40):  # from the start to most rows passing the screen
        state = fused.state()
        log_sum, count = fused.forward_backward(tokens, targets)
        right = fused.exact_correct()
        counts.update(count.tolist())
        for need in (0, 1, n // 2, n - 8, n - 7, n - 4, n - 1, n):  # topk k = 1 to 8, count
            fused.restore(state, steps)
            sums, bound = fused.forward_backward_read(tokens, targets, need)
            assert sums == log_sum.tolist()
            for b, c, r in zip(bound, count.tolist(), right.tolist(), strict=True):
                assert (b >= n) == (c >= n) and (b >= need) == (c >= need), (b, c, need)
                assert b >= r
            tight = fused.tight_bounds(n)  # on P, or on P - onehot after the scatter path
            assert all(t >= r for t, r in zip(tight, right.tolist(), strict=True))
            assert all(t <= r + 1 for t, r in zip(tight, right.tolist(), strict=True))  # tight
            fused.restore(state, steps)
            fused.forward_backward_read(tokens, targets, need)
            first = fused.tight_bounds(n, need)  # the screen's smallest rows tested first
            assert all(t >= r for t, r in zip(first, right.tolist(), strict=True))
            assert all(
                f == t or (f == need - 1 and t < f)  # the full pass, or ruled out by the rows
                for f, t in zip(first, tight, strict=True)
            ), (first, tight, need)
            ruled_out += first == [need - 1] * len(first) and first != tight
        for _ in range(40):
            fused.forward_backward(tokens, targets)
            fused.update(1.0)
    assert min(counts) < n // 2 and max(counts) > n - 8, counts  # both sides of the cuts
    # the shortcut was taken, and agreed with the full pass (rows of one target only: with
    # several a row's screen value is their least p_t, not one row of P)
    assert ruled_out > 0 if targets.shape[2] == 1 else ruled_out == 0


@pytest.mark.usefixtures("batches_round_alone")
def test_an_overflowing_replicate_takes_the_fallback_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """One replicate whose ``2^z`` softmax overflows (its ``W_out`` scaled up) has its rows'
    maxima subtracted alone: every replicate of the stack ends bitwise where its own serial
    run ends, the overflowing one included (before, the fallback was stack-wide and moved
    its neighbours' rounding). Odd sizes (23 facts x 3 relations): no replicate's block of a
    buffer is a whole number of vectors."""
    cfg = replace(PEER, steps=90, stop_loss=-1.0)  # past STABLE_STEPS: the retry runs too
    tasks = [fact_task(BijectionFacts(23, 3, seed=s)) for s in (0, 1, 2)]
    seeds = [0, 1, 2]
    start = [initial_weights(t, cfg, s) for t, s in zip(tasks, seeds, strict=True)]
    start[1]["W_out"] = start[1]["W_out"] * 400.0
    start[1]["b_in"] = start[1]["b_in"] + 5.0  # ReLUs open, so the large W_out is read
    overflows: list[list[int]] = []
    real = fused_module._overflowed

    def counted(log_sums: list[float], sums: torch.Tensor) -> list[int]:
        over = real(log_sums, sums)
        overflows.append(over)
        return over

    monkeypatch.setattr(fused_module, "_overflowed", counted)
    stacked = _train_stacked(tasks, cfg, seeds, None, start)
    seen = [i for over in overflows for i in over]
    assert seen and set(seen) == {1}, "the scaled replicate must overflow, and only it"
    for i, (task, seed) in enumerate(zip(tasks, seeds, strict=True)):
        (alone,) = _train_stacked([task], cfg, [seed], None, [start[i]])
        mine = stacked[i]
        assert mine.history == alone.history, f"replicate {i}: history"
        assert mine.steps_to_perfect == alone.steps_to_perfect
        for name, value in alone.model.state_dict().items():
            assert torch.equal(mine.model.state_dict()[name], value), f"replicate {i}: {name}"


@pytest.mark.usefixtures("batches_round_alone")
def test_a_fallback_lasts_as_long_whatever_its_stack_mates_do() -> None:
    """A replicate that overflows has its rows' maxima subtracted before the powers for that
    step and the next ``STABLE_STEPS`` (its probabilities then the softmax of its logits),
    whether or not a stack mate is on the fallback already: at every step its weights and its
    fallback state are those of its serial run. (Before, an overflow found
    while a stack mate was on the fallback kept it there one step longer than one found by the
    capacity protocol's bound step; at N = 181 that moved seed 1's accuracy after 2^15 steps.)
    After two ordinary steps (the bound step is then in use) replicate 1's ``W_out`` is scaled
    up, so it overflows, and replicate 0 is put on the fallback as if it had overflowed a step
    earlier. Odd sizes (23 facts x 3 relations)."""
    cfg = replace(PEER, steps=100, stop_loss=-1.0)
    tasks = [fact_task(BijectionFacts(23, 3, seed=s)) for s in (0, 1, 2)]
    start = [initial_weights(t, cfg, s) for s, t in enumerate(tasks)]

    def fused_step(which: list[int]) -> tuple[FusedStep, torch.Tensor, torch.Tensor]:
        chosen = [tasks[i] for i in which]
        weights = _stack(chosen, cfg, which, [start[i] for i in which], torch.float32)
        tokens, targets = _examples(chosen)
        return FusedStep(chosen[0], cfg, weights, False), tokens, targets

    stacked, tokens, targets = fused_step([0, 1, 2])
    alone, tokens1, targets1 = fused_step([1])
    on_fallback = []
    for step in range(cfg.steps):
        if step == 2:
            for fused, i in ((stacked, 1), (alone, 0)):
                assert fused._fixed is not None  # the bound step finds the overflow
                fused.w["W_out"][i].mul_(400.0)
                fused.w["b_in"][i].add_(5.0)  # ReLUs open, so the large W_out is read
            stacked._stable[0] = fused_module.STABLE_STEPS  # replicate 0 overflowed a step ago
        stacked.forward_backward_read(tokens, targets, 1)
        alone.forward_backward_read(tokens1, targets1, 1)
        assert stacked._stable[1] == alone._stable[0], f"step {step}: fallback steps left"
        on_fallback.append(alone._stable[0] > 0)
        if on_fallback[-1]:  # the shifted powers are the softmax of the logits, to the
            assert alone._h2 is not None  # rounding of float32 exponents |z| in the thousands
            logits = alone._h2[0].double() @ alone.w["W_U"][0].double()
            exact = torch.softmax(logits, dim=-1)
            error = (alone._probs[0].double() - exact).abs().max().item()
            assert error <= 4 * 2**-24 * logits.abs().max().item() * fused_module.LOG2E, step
        stacked.update(1.0)
        alone.update(1.0)
        for name in ("W_in", "b_in", "W_out"):
            assert torch.equal(stacked.w[name][1], alone.w[name][0]), f"step {step}: {name}"
    assert on_fallback[2] and on_fallback.count(True) > fused_module.STABLE_STEPS  # retried
