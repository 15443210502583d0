"""The worker's side of a job's log: lines, pieces at offsets, and what a flood loses (and says)."""

from __future__ import annotations

from webapp.domain.log_lines import parse
from webapp.worker.logbook import AttemptLog


def sent_text(log: AttemptLog) -> str:
    text, offset = [], 0
    while (piece := log.take(max_bytes=300)) is not None:
        assert piece.offset == offset and len(piece.text.encode()) == piece.size
        offset += piece.size
        text.append(piece.text)
        log.sent(piece)
    return "".join(text)


def test_lines_are_whole_stamped_and_keep_their_stream():
    log = AttemptLog()
    log.write("out", "half a ")
    log.write("err", "an error\nand ")
    log.write("out", "line\n")
    log.end()
    lines = [parse(line) for line in sent_text(log).splitlines()]
    assert [(line.stream, line.text) for line in lines] == [
        ("err", "an error"),
        ("out", "half a line"),
        ("err", "and "),
    ]
    assert all(line.at for line in lines)


def test_a_piece_not_acknowledged_is_sent_again_unchanged():
    log = AttemptLog()
    log.write("out", "one\n")
    first = log.take()
    log.write("out", "two\n")
    assert log.take() is first  # the same offset and text: stored once by the server
    log.sent(first)
    second = log.take()
    assert second is not None and second.offset == first.size and second.text.endswith("two\n")


def test_a_flood_loses_the_middle_keeps_the_beginning_and_the_newest_and_says_so():
    log = AttemptLog(buffer_limit=4000)
    for i in range(1000):
        log.write("out", f"line {i}\n")
    text = sent_text(log)
    shown = [parse(line).text for line in text.splitlines()]
    assert shown[0] == "line 0" and shown[-1] == "line 999"
    notice = [line for line in shown if "dropped" in line]
    assert len(notice) == 1
    dropped = int(notice[0].split("dropped ")[1].split()[0].replace(",", ""))
    assert dropped + len(shown) - 1 == 1000  # every line is shown or counted
    assert len(text.encode()) <= 4000 + 200
