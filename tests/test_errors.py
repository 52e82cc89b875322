"""Errors that say what happened: the template's own refusals are skips, anything else is raised; a model or
tokenizer that does not load is told apart by cause, each with its fix."""

import pytest

from analyze.errors import SkipRecord, UserError
from analyze.load_errors import load_error
from analyze.render import Renderer, template_refused
from analyze.tokenizer import load_tokenizer

USER = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.fixture
def tokenizer():
    return load_tokenizer("bundled:qwen3")  # a fresh one: the tests change its template


def test_a_template_failing_on_a_records_values_is_a_skip(tokenizer):
    tokenizer.chat_template = "{% for m in messages %}{{ m.content + 1 }}{% endfor %}"  # TypeError in the template
    with pytest.raises(SkipRecord) as e:
        Renderer(tokenizer).render_messages(USER)
    assert e.value.reason == "template_error" and "concatenate" in e.value.detail


def test_raise_exception_in_the_template_is_a_skip(tokenizer):
    tokenizer.chat_template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(SkipRecord, match="roles must alternate"):
        Renderer(tokenizer).render_messages(USER)


def test_an_error_outside_the_template_is_raised_not_counted(qwen3):
    # transformers refuses tools that are not schemas before the template runs: a bug upstream, not the data's fault
    with pytest.raises(ValueError, match="Tools should"):
        Renderer(qwen3).render_messages(USER, tools=["not a schema"])


def test_a_template_that_does_not_compile_is_one_user_error(tokenizer):
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }"
    with pytest.raises(UserError, match=r"not valid Jinja \(line 1"):
        Renderer(tokenizer)


def test_template_refused_looks_at_where_the_error_was_raised():
    assert not template_refused(TypeError("raised by lengthscan"))


def test_a_missing_model_and_tokenizer_offline_say_how_to_get_them():
    from analyze.model_facts import load_model_config

    with pytest.raises(UserError, match=r"not on this machine .*hf download nobody-xyz/no-such-model"):
        load_model_config("nobody-xyz/no-such-model")
    with pytest.raises(UserError, match=r"tokenizer 'nobody-xyz/no-such-model' is not on this machine"):
        load_tokenizer("nobody-xyz/no-such-model")


def test_a_folder_that_does_not_exist_or_holds_no_model_says_so(tmp_path):
    from analyze.model_facts import load_model_config

    with pytest.raises(UserError, match=r"model folder .*missing' does not exist; set `model`"):
        load_model_config(str(tmp_path / "missing"))
    with pytest.raises(UserError, match=r"holds no tokenizer that loads .*tokenizer.json.*set --tokenizer"):
        load_tokenizer(str(tmp_path))  # a folder without tokenizer files


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (OSError("You are trying to access a gated repo."), "is gated: accept its licence"),
        (ImportError("No module named 'bitsandbytes'"), "bitsandbytes failed"),
        (RuntimeError("CUDA error: no kernel image is available for execution on the device"), "CUDA failed"),
        (OSError("org/m is not a local folder and is not a valid model identifier"), "not found"),
        (ValueError("something else"), "cannot load model 'org/m' (something else)"),
        (ImportError("Using `bitsandbytes` 4-bit quantization requires accelerate"), "`pip install accelerate`"),
        (RuntimeError("CUDA error: out of memory"), "ran out of memory while loading"),
        (TypeError("unexpected keyword argument 'dtype'"), "(TypeError: unexpected keyword argument 'dtype')"),
        (ModuleNotFoundError("No module named 'sentencepiece'", name="sentencepiece"), "`pip install sentencepiece`"),
    ],
)
def test_load_errors_are_told_apart_by_cause(error, words):
    message = str(load_error(error, "model", "org/m"))
    assert words in message and "\n" not in message


def test_the_name_itself_is_not_evidence_of_a_cause(tmp_path):
    folder = tmp_path / "cuda error run"
    folder.mkdir()
    message = str(load_error(OSError(f"{folder}/config.json is not valid JSON"), "model", str(folder)))
    assert "CUDA" not in message and "holds no model that loads" in message


def test_a_cause_is_found_along_the_chain():
    try:
        try:
            raise OSError("403: you are trying to access a gated repo")
        except OSError as inner:
            raise ValueError("could not load the config") from inner
    except ValueError as e:
        outer = e
    assert "is gated" in str(load_error(outer, "model", "org/m"))
