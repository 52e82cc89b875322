"""The report's eval line says why there is no eval: a fraction of 0, or a max_length that leaves the held-out
conversations no assistant token (as `train` says it), never "eval_fraction 0" when it is not."""

import pytest

from analyze.analysis import analyze_files
from analyze.report import _split_line
from tests.conftest import SAMPLE

pytestmark = pytest.mark.integration


def test_no_eval_because_of_max_length_is_not_called_a_fraction_of_0():
    a = analyze_files([str(SAMPLE)], max_length=16)  # the chat template's own tokens fill 16: no assistant token left
    assert a.eval_records == 0 and a.held_out.sum() == 112  # 5% of the 2,354 conversations, held out by hash
    assert _split_line(a) == "no eval: none of the 112 held-out conversations has an assistant token within max_length"
    no_fraction = analyze_files([str(SAMPLE)], **{"data.eval_fraction": 0.0})
    assert _split_line(no_fraction) == "no eval hold-out (data.eval_fraction 0)"
