"""A skip names the fix that exists: a record the chat template refuses for its roles says `--fix-roles` renders it,
and the skip-limit error counts those records and names `--fix-roles` beside `--max-skip` — in both commands, with
real templates (Gemma 3's, and a strict one built here) on real records."""

import json

import pytest

from analyze.analysis import check_skips
from analyze.errors import UserError
from analyze.pipeline import tokenize_files
from analyze.render import FIXABLE
from analyze.tokenizer import load_tokenizer
from tests.conftest import SAMPLE
from tests.families import make_family

CALL = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
TOOL = {  # a tool call and its result: Gemma 3's template has no tool role and refuses it
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 18}'},
        {"role": "assistant", "content": "18 degrees."},
    ]
}
CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
FORBIDDEN = {"messages": [{"role": "user", "content": "forbidden"}, {"role": "assistant", "content": "No."}]}

# refuses the tool role (which --fix-roles folds into a user turn) and a word (which no role fix changes)
STRICT = (
    "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tool role') }}{% endif %}"
    "{% if 'forbidden' in m.content %}{{ raise_exception('a forbidden word') }}{% endif %}"
    "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
)


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    return make_family("gemma3", tmp_path_factory.mktemp("gemma3"))


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    path = tmp_path_factory.mktemp("strict") / "strict.jinja"
    path.write_text(STRICT)
    return load_tokenizer("bundled:qwen3", chat_template_file=path)


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_a_refusal_fix_roles_cures_says_so_and_one_it_does_not_cure_does_not(tmp_path, strict):
    path = _write(tmp_path / "data.jsonl", [CHAT, TOOL, FORBIDDEN, CHAT])
    result = tokenize_files([path], strict, cache=False)
    assert result.records == 2 and dict(result.skips.counts) == {"template_error": 2}
    (line2, _, tool), (line3, _, word) = [(w, r, d) for w, r, d in result.skips.records]
    assert line2.endswith(":2") and "no tool role" in tool and tool.endswith(FIXABLE)
    assert line3.endswith(":3") and "a forbidden word" in word and not word.endswith(FIXABLE)
    assert result.skips.examples[0].endswith(f"{FIXABLE} [template_error]")  # the report's skipped lines show it

    with pytest.raises(UserError) as e:  # 2 of 4 skipped, over the default 5%
        check_skips(result, 0.05)
    message = str(e.value)
    assert "2 of 4 records skipped (50.0%): template_error 2" in message
    assert "pass --fix-roles (data.fix_roles: true), which renders the 1 the chat template refuses" in message
    assert message.endswith("or allow it with --max-skip RATE")

    fixed = tokenize_files([path], strict, cache=False, options=_fix_roles())  # and it does render that one
    assert fixed.records == 3 and dict(fixed.roles_fixed) == {"folded_tool_turns": 1}
    assert [d for _, _, d in fixed.skips.records] == [word]


def test_without_a_refusal_fix_roles_cures_the_limit_names_max_skip_alone(tmp_path, strict):
    result = tokenize_files([_write(tmp_path / "data.jsonl", [CHAT, FORBIDDEN])], strict, cache=False)
    with pytest.raises(UserError) as e:
        check_skips(result, 0.05)
    assert "--fix-roles" not in str(e.value) and "--max-skip RATE" in str(e.value)
    everything = tokenize_files([_write(tmp_path / "all.jsonl", [FORBIDDEN])], strict, cache=False)
    with pytest.raises(UserError, match=r"check --format$"):  # nothing analysed, nothing a role fix renders
        check_skips(everything, 0.05)


def test_when_every_record_is_refused_for_its_roles_the_error_names_fix_roles(tmp_path, gemma_dir):
    gemma = load_tokenizer(str(gemma_dir))
    result = tokenize_files([_write(tmp_path / "data.jsonl", [TOOL, TOOL])], gemma, cache=False)
    with pytest.raises(UserError) as e:
        check_skips(result, 1.0)  # all skipped: stops whatever max_skip says
    assert str(e.value).startswith("no record could be analysed: 2 of 2 records skipped (100.0%): template_error 2")
    assert str(e.value).endswith("; pass --fix-roles (data.fix_roles: true), which renders the 2 the chat template "
                                 "refuses for their roles (turns of one role merged, tool turns folded into user and "
                                 "assistant text)")  # fmt: skip


@pytest.mark.integration
def test_gemma3_with_tool_data_stops_naming_fix_roles_and_both_commands_take_it(tmp_path, gemma_dir, capsys):
    """18 conversations of the sample and 2 with tool calls (10% skipped by Gemma 3's template, over 5%): both
    commands stop, naming --fix-roles and --max-skip; with `--fix-roles` (no value) both go on."""
    from analyze.cli import main as lengthscan
    from train.cli import main as train

    sample = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:18]]
    path = _write(tmp_path / "tools.jsonl", [*sample[:9], TOOL, *sample[9:], TOOL])
    stops = "2 of 20 records skipped (10.0%): template_error 2, more than data.max_skip 0.05"
    names = "pass --fix-roles (data.fix_roles: true), which renders the 2 the chat template refuses for their roles"
    for command, argv in (
        (lengthscan, [str(path), "--tokenizer", str(gemma_dir)]),
        (train, ["--model", str(gemma_dir), "--data.train", str(path), "--dry-run", "--json"]),
    ):
        assert command(argv) == 2
        error = capsys.readouterr().err.splitlines()[-1]  # train prints its resolved config before
        assert error.startswith(f"{'train' if command is train else 'lengthscan'}: error: {stops}"), error
        assert names in error and error.endswith("or allow it with --max-skip RATE")
        assert "tools.jsonl:10: the chat template refused it" in error and FIXABLE in error

        assert command([*argv, "--fix-roles", "--json"]) == 0  # alone: true
        doc = json.loads(capsys.readouterr().out)
        if command is lengthscan:
            assert doc["records"] == 20 and doc["skipped"] == 0 and doc["roles_fixed"] == {"folded_tool_turns": 2}
        else:
            assert doc["train_conversations"] + doc["eval_conversations"] == 20


def _fix_roles():
    from analyze.formats import Options

    return Options(fix_roles=True)
