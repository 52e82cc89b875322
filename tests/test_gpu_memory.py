"""GPU memory reporting without a GPU: the T4 emulation's cap, and the end-of-run line's arithmetic."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from analyze.gpus import CONTEXT_GIB, GPUS
from analyze.memory import GIB
from train.gpu_memory import PeakAfterFirstStep, emulate_t4


def test_the_t4_emulation_caps_the_allocator_at_the_t4_less_its_context(monkeypatch):
    capped = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, *a: capped.append(f))
    assert emulate_t4(139.8) == GPUS["T4"]  # the budget planned for: what a T4 reports
    assert abs(capped[0] * 139.8 - (GPUS["T4"] - CONTEXT_GIB)) < 1e-9


def test_the_peak_is_reset_after_the_first_step_and_read_at_the_end(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 5 * GIB)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 6 * GIB)
    peak = PeakAfterFirstStep()
    for step in (7, 8, 9):  # a resumed run: its first step here is 7
        peak.on_step_end(None, SimpleNamespace(global_step=step), None)
    peak.on_train_end(None, SimpleNamespace(global_step=9), None)
    assert calls == ["reset"] and peak.first_step == 7
    line = peak.line({"peak_gib": 6.6 + CONTEXT_GIB})
    assert line.startswith(f"GPU memory after step 7: peak {5 + CONTEXT_GIB:.2f} GiB allocated, {6 + CONTEXT_GIB:.2f}")
    assert "predicted 7.20 (+9% of reserved, +29% of allocated)" in line


def test_a_run_of_one_step_says_it_measured_nothing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: None)
    peak = PeakAfterFirstStep()
    peak.on_step_end(None, SimpleNamespace(global_step=1), None)
    peak.on_train_end(None, SimpleNamespace(global_step=1), None)
    assert peak.line({"peak_gib": 3.0}).startswith("GPU memory: not measured")
