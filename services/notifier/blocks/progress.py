"""Live progress in a run's parent message: elapsed time and the log's last lines.

While a run runs, its parent shows how long it has been running and the last lines its
log printed (from :class:`~shared.events.BatchRunProgress`); once it ended, the parent keeps
the last lines (the finish's tail). The thread reply of the finish has the longer tail.
"""

from __future__ import annotations

from services.notifier.views import RunView
from shared.slack.blocks import Block, duration, plural, section, tail_code_block
from shared.state_table.runs import RUN_OUTCOMES

#: The most log lines the parent message shows (the channel stays readable).
MAX_PARENT_TAIL_LINES = 10
#: The characters of the parent's code block (well inside a section's 3000).
MAX_PARENT_TAIL_CHARS = 1500


def progress_blocks(view: RunView) -> list[Block]:
    """The progress section of a run's parent message (none before any progress)."""
    if view.phase == "running" and view.elapsed_seconds is not None:
        head = f":hourglass_flowing_sand: Running for *{duration(view.elapsed_seconds)}*"
        if not view.tail:
            return [section(f"{head} · _no output yet_")]
        block, cut = tail_code_block(
            view.tail, max_lines=MAX_PARENT_TAIL_LINES, limit=MAX_PARENT_TAIL_CHARS
        )
        shown = len(view.tail) - cut
        return [section(f"{head} · last {shown} {plural(shown, 'line')}\n{block}")]
    if view.phase in RUN_OUTCOMES and view.tail:
        block, cut = tail_code_block(
            view.tail, max_lines=MAX_PARENT_TAIL_LINES, limit=MAX_PARENT_TAIL_CHARS
        )
        shown = len(view.tail) - cut
        return [section(f"*Last {shown} log {plural(shown, 'line')}*\n{block}")]
    return []
