"""Layout of the registry commands' output: consoles, tables, and the narrow layouts for 80 columns.

Split from ``cli.py`` so the command module holds the commands; nothing here opens a registry.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from cosmos_ros.registry.display import clean

#: Width for output that goes to a pipe or file (no $COLUMNS): wide enough that no line is folded.
_PIPE_WIDTH = 10_000


def _console() -> Any:
    """A console for stdout: messages are never hard-wrapped, and piped tables are not cut at 80.

    Why: rich assumes 80 columns for a pipe or file, which folded hashes, ids and column headers
    (``sha25/6``) in output meant for grep or a log. A terminal (or $COLUMNS) keeps its width.
    """
    from rich.console import Console

    width = None
    if not os.environ.get("COLUMNS") and not _is_terminal(sys.stdout):
        width = _PIPE_WIDTH
    console = Console(highlight=False, soft_wrap=True, width=width)
    console.on_broken_pipe = _raise_broken_pipe  # rich's own handling exits 1; cli.main's exits 141
    return console


def _raise_broken_pipe() -> None:
    raise BrokenPipeError


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _table(title: str | None, columns: list[str], no_wrap: int = 0) -> Any:
    """A rich table; the first ``no_wrap`` columns (ids, statuses) are never broken across lines."""
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for index, column in enumerate(columns):
        table.add_column(column, overflow="fold", no_wrap=index < no_wrap)
    return table


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def _short(value: str | None, keep: int = 12) -> str:
    if not value:
        return "-"
    return value if len(value) <= keep + 3 else value[:keep] + "…"


def _natural_width(console: Any, renderable: Any) -> int:
    """How wide ``renderable`` is when nothing in it is folded."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(_PIPE_WIDTH), renderable).maximum


def _shrink(widths: list[int], cuts: list[tuple[int, int]], excess: int) -> list[int]:
    """``widths`` less ``excess`` columns, taken from each ``(index, floor)`` of ``cuts`` in turn.

    The narrow layouts of ``list``, ``log`` and ``show`` share it: which columns give way first, and
    how far, is theirs to say; none goes below its floor.
    """
    widths = list(widths)
    for index, floor in cuts:
        cut = min(max(excess, 0), max(0, widths[index] - floor))
        widths[index] -= cut
        excess -= cut
    return widths


#: Between columns of the narrow layouts, and before the lines that hold a row's long values.
_GAP, _INDENT = 2, 4


class _Column:
    """A column of :func:`_narrow_rows`.

    ``overflow`` is ``none`` (short fixed values: never shortened), ``ellipsis`` (who acted: cut
    with …) or ``fold`` (ids, which one copies: continued on the next line, never cut).
    """

    def __init__(self, header: str, overflow: str = "none", min_width: int = 0) -> None:
        self.header, self.overflow = header, overflow
        self.min_width = max(min_width, len(header))


def _narrow_rows(
    console: Any, title: str | None, columns: list[_Column], rows: list[tuple[list[Any], list[str]]]
) -> Any:
    """Rows of short cells, one line each, with each row's long values on indented lines below.

    Why: at 80 columns rich folded every cell of a six-column table into fragments (``artifact_sha``
    / ``256=abb4…``, ``creat/ed``). Here a row is ``(cells, long values)``: the cells keep one line
    (``ellipsis`` columns are shortened first, then ``fold`` columns, down to ``min_width``; headers
    are never split) and each long value gets the width of the terminal to itself, wrapped at words.
    """
    from rich.text import Text

    texts = [[cell if isinstance(cell, Text) else Text(str(cell)) for cell in cells] for cells, _ in rows]
    widths = [
        max([len(column.header), *(row[index].cell_len for row in texts)])
        for index, column in enumerate(columns)
    ]
    excess = sum(widths) + _GAP * (len(widths) - 1) - console.width
    # Down to the readable minimum first; on a very narrow console, down to the header's width.
    cuts = [
        (index, column.min_width if floor == "min_width" else len(column.header))
        for floor in ("min_width", "header")
        for kind in ("ellipsis", "fold")
        for index, column in enumerate(columns)
        if column.overflow == kind
    ]
    widths = _shrink(widths, cuts, excess)

    def line(cells: list[Any]) -> Any:
        joined = Text(" " * _GAP).join(
            cell if index == len(cells) - 1 else cell + " " * (widths[index] - cell.cell_len)
            for index, cell in enumerate(cells)
        )
        joined.rstrip()
        return joined

    lines = [Text(title, style="italic")] if title else []
    lines.append(line([Text(column.header, style="bold") for column in columns]))
    lines.append(Text("─" * (sum(widths) + _GAP * (len(widths) - 1))))
    for cells, (_, long_values) in zip(texts, rows, strict=True):
        parts = []
        for width, column, cell in zip(widths, columns, cells, strict=True):
            if cell.cell_len <= width:
                parts.append([cell])
            elif column.overflow == "fold":
                parts.append(list(cell.wrap(console, width, overflow="fold")))
            else:
                shortened = cell.copy()
                shortened.truncate(width, overflow="ellipsis")
                parts.append([shortened])
        for depth in range(max(len(part) for part in parts)):
            lines.append(line([part[depth] if depth < len(part) else Text("") for part in parts]))
        for value in long_values:
            for wrapped in Text(value).wrap(console, max(console.width - _INDENT, 8), overflow="fold"):
                wrapped.rstrip()
                lines.append(Text(" " * _INDENT) + wrapped)
    return Text("\n").join(lines)


#: Columns of ``adapters list``; the narrow layout leaves out the last two and the time of day.
_LIST_COLUMNS = ("adapter", "status", "type", "base", "eval", "created", "by", "parent", "sha256")
_LIST_NARROW_DROPS = ("parent", "sha256")
#: How far the narrow layout may shorten ``by`` (ellipsis) and then ``adapter`` (folded, never cut).
_LIST_MIN_BY, _LIST_MIN_ADAPTER = 6, 12


def _list_table(title: str, records: list[Any], console: Any) -> Any:
    """The full table where it fits the console, else a narrow layout; headers are never split.

    Why: nine columns do not fit 80, and rich then broke every header and value into fragments
    (``creat/ed``, ``sha25/6``). The narrow layout drops two columns that ``show`` and ``--json``
    still give, then shortens who registered it (ellipsis) and last folds the id (never cut: it is
    what one copies). Other columns are short and fixed; they are never wrapped.
    """

    def natural(table: Any) -> int:
        return _natural_width(console, table)

    table = _list_table_of(title, records, _LIST_COLUMNS, time_of_day=True)
    if natural(table) <= console.width:
        return table
    columns = tuple(column for column in _LIST_COLUMNS if column not in _LIST_NARROW_DROPS)
    table = _list_table_of(title, records, columns, time_of_day=False)
    excess = natural(table) - console.width
    if excess > 0:
        table = _list_table_of(title, records, columns, time_of_day=False, squeeze=excess)
    table.caption = f"{' and '.join(_LIST_NARROW_DROPS)} left out at this width: see 'show REF' or --json"
    return table


def _list_table_of(
    title: str, records: list[Any], columns: tuple[str, ...], *, time_of_day: bool, squeeze: int = 0
) -> Any:
    """``squeeze``: columns to take away from ``by``, then ``adapter``, down to their minimum widths."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    rows = []
    for record in records:
        latest = record.latest_evaluation
        passed = (
            "-" if latest is None else {True: "pass", False: "FAIL"}.get(latest.results.get("passed"), "yes")
        )
        kind = (
            f"{record.adapter_type or '?'} r{record.rank}" if record.rank is not None else record.adapter_type
        )
        base = (record.base_fingerprint or "").removeprefix("sha256:")
        rows.append(
            {
                "adapter": escape(clean(record.adapter_id)),
                "status": _status_style(record.status),
                "type": kind or "-",
                "base": _short(base, 8) if base else "[yellow]none[/yellow]",
                "eval": passed,
                "created": record.created_at[: 16 if time_of_day else 10].replace("T", " "),
                "by": escape(clean(record.created_by)),
                "parent": escape(clean(record.parent or "-")),
                "sha256": record.artifact_sha256[:8],
            }
        )
    shrinkable = ("by", "adapter")
    natural = [max([len(column), *(len(row[column]) for row in rows)]) for column in shrinkable]
    narrowed = _shrink(natural, [(0, _LIST_MIN_BY), (1, _LIST_MIN_ADAPTER)], squeeze)
    limits = dict(zip(shrinkable, narrowed, strict=True))
    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(
            column,
            min_width=len(column),
            max_width=limits.get(column),
            no_wrap=column != "adapter",
            overflow="ellipsis" if column == "by" else "fold",
        )
    for row in rows:
        table.add_row(*(row[column] for column in columns))
    return table


def _status_style(status: str) -> str:
    style = {"approved": "green", "candidate": "cyan", "deprecated": "yellow", "revoked": "red"}.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _show_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def _show_narrow(console: Any, record: Any, fields: list[tuple[str, str]]) -> list[Any]:
    """``show`` for a console too narrow for its tables: nothing left out, nothing folded mid-row.

    Why: at 80 columns digests, paths, notes and every history column were folded into fragments.
    Here a value too long for its row (a sha256, the weights path, a note) moves, whole, to an
    indented line of its own under its field; history and evaluations keep one line per change
    with their notes and results below it. ``--json`` gives the same record for programs.
    """
    from rich.text import Text

    room = console.width - max(len(key) for key, _ in fields) - _GAP
    rows: list[tuple[list[Any], list[str]]] = []
    for key, text in fields:
        fits = len(text) <= room and "\n" not in text
        value = Text.from_markup(_status_style(text)) if key == "status" else Text(text)
        rows.append(([key, value if fits else ""], [] if fits else [text]))
    parts = [_narrow_rows(console, clean(record.adapter_id), [_Column("field"), _Column("value")], rows)]
    history = [
        (
            [clean(v) for v in (change.at, change.from_status or "-", change.to_status, change.by)],
            [
                f"{label}: {clean(text)}"
                for label, text in (("note", change.note), ("forced because", change.force_reason))
                if text
            ],
        )
        for change in record.history
    ]
    columns = [_Column("at"), _Column("from"), _Column("to"), _Column("by", "ellipsis", 6)]
    parts.append(_narrow_rows(console, "status history", columns, history))
    if record.evaluations:
        evals = [
            (
                [clean(entry.at), clean(entry.by)],
                [f"results: {clean(json.dumps(entry.results, sort_keys=True))}"],
            )
            for entry in record.evaluations
        ]
        columns = [_Column("at"), _Column("by", "ellipsis", 6)]
        parts.append(_narrow_rows(console, "evaluations", columns, evals))
    return parts


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _log_details(entry: Any) -> str:
    """An audit entry's details as ``key=value`` words; digests shortened (``--json`` has them whole)."""
    return " ".join(
        f"{clean(key)}={_short(str(value), 12) if key.endswith('sha256') else clean(value)}"
        for key, value in sorted(entry.details.items())
        if value not in (None, False, [], {}) and key not in ("source", "from_status", "to_status")
    )
