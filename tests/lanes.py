"""Browser lanes for pytest-xdist: tests that start Chromium run in order on one worker, scheduled
first, while the other worker takes everything else around them.

Why not ``xdist_group`` + ``--dist loadgroup``: with pytest 9.2, xdist 3.8's loadgroup silently
stops grouping (it renames node ids to carry the group, which pytest 9.2 no longer lets it do;
pytest-dev/pytest-xdist#1386), and the tests are shared out one by one as with ``--dist load``.
So the workers, which know each test's fixtures, write which test runs in which lane to a file in
the run's shared temp dir, and the controller's scheduler (``LaneScheduling``, chosen by
``pytest_xdist_make_scheduler`` in tests/conftest.py when ``--dist loadgroup`` is asked for) reads
it: a lane is one unit of work, every other test is a unit of its own, handed out in collection
order (tests/conftest.py puts the lanes first and the late lane last).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from xdist.scheduler import LoadGroupScheduling

LANES_FILE = "browser-lanes.json"


def shared_dir(config: pytest.Config) -> Path:
    """The run's temp dir that the controller and its workers share (a worker's basetemp is a
    ``gwN`` directory inside the controller's)."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def write_lanes(config: pytest.Config, lanes: dict[str, str]) -> None:
    """On a worker: publish {nodeid: lane} (every worker collects the same; written atomically)."""
    path = shared_dir(config) / LANES_FILE
    tmp = path.with_name(f"{LANES_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(lanes))
    tmp.replace(path)


class LaneScheduling(LoadGroupScheduling):
    """``--dist loadgroup`` whose groups are the browser lanes the workers published."""

    def __init__(self, config: pytest.Config, log=None) -> None:
        super().__init__(config, log)
        self._config = config
        self._lanes: dict[str, str] | None = None
        # the work goes out in collection order, which tests/conftest.py sets (lanes first, the
        # late lane last), not largest first
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        if self._lanes is None:  # first called once every worker has collected
            path = shared_dir(self._config) / LANES_FILE
            self._lanes = json.loads(path.read_text()) if path.exists() else {}
        return self._lanes.get(nodeid) or super()._split_scope(nodeid)
