"""External commands run by the worker: real subprocesses, their exit codes,
their output, and stopping their whole process group."""

from __future__ import annotations

import sys
import time

import pytest

from webapp.domain.limits import ARGV_ITEM_MAX_CHARS, ARGV_MAX_ITEMS
from webapp.server.api.worker_schemas import Start
from webapp.worker.process import (
    OUTPUT_TAIL_BYTES,
    GroupProcess,
    OutputTail,
    TemplateError,
    clip_argv,
    fill_argv,
)

from tests.support.processes import alive

PY = sys.executable


def wait_for_line(output: OutputTail, prefix: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Whole lines only: an unbuffered child (PYTHONUNBUFFERED) writes print's parts one by one.
        for line in output.text().splitlines(keepends=True):
            if line.startswith(prefix) and line.endswith("\n"):
                return line[len(prefix) :].strip()
        time.sleep(0.02)
    raise AssertionError(f"no line starting with {prefix!r} in {output.text()!r}")


def run(argv: list[str], kill_grace: float = 1.0) -> tuple[int, OutputTail]:
    output = OutputTail()
    process = GroupProcess(argv, output=output, kill_grace=kill_grace)
    process.start()
    return process.wait(), output


# A command that starts a grandchild in its own group and reports both pids.
FAMILY = (
    "import subprocess, sys, time, os\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('grandchild', child.pid, flush=True)\n"
    "time.sleep(60)\n"
)

IGNORES_TERM = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"
)


def test_a_command_that_succeeds_returns_exit_code_zero():
    assert run([PY, "-c", "pass"])[0] == 0


def test_a_command_that_fails_returns_its_exit_code():
    assert run([PY, "-c", "import sys; sys.exit(7)"])[0] == 7


def test_stdout_and_stderr_both_land_in_the_output():
    _, output = run([PY, "-c", "import sys; print('to stdout', flush=True); sys.stderr.write('to stderr\\n')"])
    assert "to stdout" in output.text() and "to stderr" in output.text()


def test_only_the_last_64_kb_of_output_are_kept():
    script = "import sys\nfor i in range(20000): print(f'line {i:06d}')\nsys.stderr.write('the end\\n')"
    _, output = run([PY, "-c", script])
    text = output.text()
    assert len(text.encode()) == OUTPUT_TAIL_BYTES
    assert text.endswith("the end\n") and "line 000000" not in text


def test_a_cut_through_a_multibyte_character_is_dropped_not_garbled():
    tail = OutputTail(limit=4)
    tail.write("aé€".encode())  # 1 + 2 + 3 bytes; the limit cuts the é in two
    assert tail.text() == "€"


def test_arguments_are_passed_without_a_shell():
    argv = fill_argv([PY, "-c", "import sys; print(sys.argv[1])", "{name}"], {"name": "$(touch /tmp/x); `id` | cat"})
    _, output = run(argv)
    assert output.text() == "$(touch /tmp/x); `id` | cat\n"


def test_terminate_stops_the_command_and_its_grandchildren():
    output = OutputTail()
    process = GroupProcess([PY, "-c", FAMILY], output=output, kill_grace=5)
    process.start()
    grandchild = int(wait_for_line(output, "grandchild"))

    process.terminate()
    returncode = process.wait()

    assert returncode == -15
    assert not alive(process.pid) and not alive(grandchild)


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace():
    output = OutputTail()
    process = GroupProcess([PY, "-c", IGNORES_TERM], output=output, kill_grace=0.5)
    process.start()
    wait_for_line(output, "ready")

    began = time.monotonic()
    process.terminate()
    returncode = process.wait()
    took = time.monotonic() - began

    assert returncode == -9
    assert 0.5 <= took < 3


def test_a_grandchild_left_behind_by_a_finished_command_does_not_survive():
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('grandchild', child.pid, flush=True)\n"
    )
    output = OutputTail()
    process = GroupProcess([PY, "-c", script], output=output, kill_grace=2)
    process.start()

    assert process.wait() == 0
    assert not alive(int(wait_for_line(output, "grandchild")))


def test_placeholders_are_filled_from_the_payload_one_argument_each():
    argv = fill_argv(
        ["convert", "{input}", "--size={size.w}x{size.h}", "{{literal}}"],
        {"input": "my file.png", "size": {"w": 64, "h": 48}},
    )
    assert argv == ["convert", "my file.png", "--size=64x48", "{literal}"]


@pytest.mark.parametrize(
    "value, kind", [(["a.mp4", "-o", "/etc/cron.d/x"], "a list"), ({"a": 1}, "an object"), (None, "null")]
)
def test_a_placeholder_takes_one_scalar_never_a_list_that_would_add_arguments(value, kind):
    with pytest.raises(TemplateError, match=f"payload field 'file' is {kind}; .* one string or number"):
        fill_argv(["ffmpeg", "-i", "{file}"], {"file": value})


@pytest.mark.parametrize("template", [["tool", "{file}"], ["tool", "{file}.mp4"], ["tool", "{prefix}{file}"]])
@pytest.mark.parametrize("value", ["-o", "--output=/etc/cron.d/x", "-", -5])
def test_a_value_that_would_read_as_an_option_is_refused_naming_the_field(template, value):
    with pytest.raises(TemplateError, match=r"payload field 'file' begins with '-' .* \{file!option\}"):
        fill_argv(template, {"file": value, "prefix": ""})


def test_a_slot_marked_option_takes_a_value_beginning_with_a_dash():
    argv = fill_argv(["tool", "{flag!option}", "--", "{file}"], {"flag": "-v", "file": "a"})
    assert argv == ["tool", "-v", "--", "a"]


def test_a_dash_inside_an_argument_cannot_read_as_an_option_and_passes():
    assert fill_argv(["tool", "--offset={n}", "x{name}"], {"n": -5, "name": "-y"}) == ["tool", "--offset=-5", "x-y"]


def test_a_value_with_a_nul_character_is_refused_naming_the_field():
    with pytest.raises(TemplateError, match="'name' contains a NUL"):
        fill_argv(["tool", "{name}"], {"name": "a\0b"})


def test_a_placeholder_missing_from_the_payload_is_an_error_naming_it():
    with pytest.raises(TemplateError, match="'seconds'"):
        fill_argv(["sleep", "{seconds}"], {})


def test_a_placeholder_holding_an_object_is_refused():
    with pytest.raises(TemplateError, match="'opts'"):
        fill_argv(["tool", "--opts={opts}"], {"opts": {"a": 1}})


def test_the_argv_a_worker_reports_is_clipped_to_what_the_server_takes_saying_what_was_cut():
    argv = ["tool", "x" * (ARGV_ITEM_MAX_CHARS + 10), *(["a"] * ARGV_MAX_ITEMS)]
    shown = clip_argv(argv)
    assert len(shown) == ARGV_MAX_ITEMS and shown[-1] == "… 3 more arguments"
    assert len(shown[1]) == ARGV_ITEM_MAX_CHARS and shown[1].endswith(f"… ({ARGV_ITEM_MAX_CHARS + 10} characters)")
    assert Start(lease_token="t", argv=shown).argv == shown  # the server accepts it
    assert clip_argv(["ffmpeg", "-i", "in.mp4"]) == ["ffmpeg", "-i", "in.mp4"]
