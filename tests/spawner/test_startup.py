"""failure_cause: the one line of a failed server's output that says why it stopped;
timeout_cause: what a server that never answered printed last."""

from __future__ import annotations

from mlfactory.spawner.startup import (
    failure_cause,
    last_log_lines,
    timeout_cause,
    timeout_cause_html,
)

ROOT_LOG = """\
[I 2026-11-26 10:15:01.101 ServerApp] Extension package jupyter_lsp took 0.0s to import
[I 2026-11-26 10:15:01.250 ServerApp] jupyter_lsp | extension was successfully linked.
[I 2026-11-26 10:15:01.260 ServerApp] jupyter_server_terminals | extension was successfully linked.
[I 2026-11-26 10:15:01.270 ServerApp] jupyterlab | extension was successfully linked.
[C 2026-11-26 10:15:01 ServerApp] Running as root is not recommended. Use --allow-root to bypass.
[W 2026-11-26 10:15:01.301 ServerApp] Shutting down 0 kernels
"""

TRACEBACK_LOG = """\
[I 2026-11-26 10:15:01.101 SingleUserLabApp] starting
Traceback (most recent call last):
  File "/opt/conda/bin/jupyterhub-singleuser", line 10, in <module>
    sys.exit(main())
  File "/opt/conda/lib/python3.11/site-packages/jupyterhub/singleuser/app.py", line 5, in main
    import mlfactory_missing
ModuleNotFoundError: No module named 'mlfactory_missing'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/opt/conda/bin/jupyterhub-singleuser", line 12, in <module>
    raise RuntimeError("could not import the server extension")
RuntimeError: could not import the server extension
[I 2026-11-26 10:15:02.000 SingleUserLabApp] exiting
"""

NO_DIR_LOG = """\
[I 2026-11-26 10:15:01.101 ServerApp] Extension package jupyterlab took 0.1s to import
[W 2026-11-26 10:15:01.200 ServerApp] A `_jupyter_server_extension_points` function was not found
[C 2026-11-26 10:15:01.300 ServerApp] No such directory: '/home/alice/missing'
[I 2026-11-26 10:15:01.301 ServerApp] exiting
"""


def test_root_warning():
    assert failure_cause(ROOT_LOG) == (
        "Running as root is not recommended. Use --allow-root to bypass."
    )


def test_root_warning_wins_over_a_later_error():
    log = ROOT_LOG + "ValueError: something else\n"
    assert failure_cause(log).startswith("Running as root is not recommended")


def test_last_exception_line_of_traceback():
    assert failure_cause(TRACEBACK_LOG) == "RuntimeError: could not import the server extension"


def test_single_exception_keeps_full_text():
    log = TRACEBACK_LOG.split("\n\nDuring handling")[0]
    assert failure_cause(log) == "ModuleNotFoundError: No module named 'mlfactory_missing'"


def test_dotted_exception_name():
    log = "Traceback (most recent call last):\n  File x\ntraitlets.TraitError: bad value 'x'\n"
    assert failure_cause(log) == "traitlets.TraitError: bad value 'x'"


def test_exception_suffix():
    assert failure_cause("boom\nSpawnerException: stop\n") == ("SpawnerException: stop")


def test_exception_line_wins_over_critical_log_line():
    log = NO_DIR_LOG + "OSError: [Errno 98] Address already in use\n"
    assert failure_cause(log) == "OSError: [Errno 98] Address already in use"


def test_critical_log_line_text_after_bracket():
    assert failure_cause(NO_DIR_LOG) == "No such directory: '/home/alice/missing'"


def test_critical_wins_over_error_log_line():
    log = (
        "[C 2026-11-26 10:15:01.300 ServerApp] Port 8888 is in use\n"
        "[E 2026-11-26 10:15:01.400 ServerApp] Failed to stop kernel\n"
    )
    assert failure_cause(log) == "Port 8888 is in use"


def test_error_log_line_text_after_bracket():
    log = "[I 2026 ServerApp] hi\n[E 2026-11-26 10:15:01.400 ServerApp] Exception opening x\n"
    assert failure_cause(log) == "Exception opening x"


def test_traceback_source_lines_are_not_mistaken_for_the_error():
    log = '  File "x.py", line 1\n    raise ValueError("inner")\nplain last words\n'
    assert failure_cause(log) == "plain last words"


def test_falls_back_to_last_non_empty_line():
    log = "[I 2026 ServerApp] starting\nsomething went sideways\n\n   \n"
    assert failure_cause(log) == "something went sideways"


def test_empty_output():
    for output in ("", "\n\n", "   \n\t\n"):
        assert failure_cause(output) == (
            "it printed nothing; an admin can find its log under the hub's data folder"
        )


def test_long_lines_are_truncated():
    cause = failure_cause("x" * 1000)
    assert len(cause) == 400
    assert cause.endswith("…")
    assert cause.startswith("x" * 399)


def test_long_error_line_truncated():
    cause = failure_cause("ValueError: " + "y" * 1000)
    assert len(cause) <= 400
    assert cause.startswith("ValueError: yyy")
    assert cause.endswith("…")


def test_line_at_limit_is_not_truncated():
    line = "z" * 400
    assert failure_cause(line) == line


# --- a server that never answered -------------------------------------------------------


def test_last_log_lines_are_the_last_non_blank_ones():
    log = "".join(f"line {i}\n\n" for i in range(20))
    assert last_log_lines(log) == [f"line {i}" for i in range(12, 20)]
    assert last_log_lines(log, 2) == ["line 18", "line 19"]
    assert last_log_lines("  \n\n") == []


def test_last_log_lines_are_shortened():
    (line,) = last_log_lines("w" * 1000)
    assert len(line) == 200 and line.endswith("…")


def test_timeout_cause_names_the_limit_and_the_last_lines():
    lines = last_log_lines(NO_DIR_LOG, 2)
    assert timeout_cause(30, lines) == (
        "Your server did not accept connections within 30 s, so it was stopped. "
        "The last lines of its log:\n"
        "[C 2026-11-26 10:15:01.300 ServerApp] No such directory: '/home/alice/missing'\n"
        "[I 2026-11-26 10:15:01.301 ServerApp] exiting"
    )


def test_timeout_cause_without_output():
    assert timeout_cause(7.5, []) == (
        "Your server did not accept connections within 7.5 s, so it was stopped; it printed "
        "nothing; an admin can find its log under the hub's data folder."
    )


def test_timeout_cause_html_escapes_what_the_server_printed():
    html = timeout_cause_html(30, ["<script>alert(1)</script>", "a & b"])
    assert html == (
        "Your server did not accept connections within 30 s, so it was stopped. The last "
        "lines of its log:<pre>&lt;script&gt;alert(1)&lt;/script&gt;\na &amp; b</pre>"
    )
    assert timeout_cause_html(30, []) == timeout_cause(30, []).replace("'", "&#x27;")
