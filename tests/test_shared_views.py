"""Every live page builds its figures as shared views: once per snapshot for all the sessions watching a run.

A figure built in each session's redraw cost a class dearly: 20 sessions on one GAN run got 0.38 refreshes/s
each while the CNN page, whose figures were shared, got 3.0; sharing the GAN page's took it to 1.8. That one
build serves every watcher is tested on dlviz.ui.live.shared_view itself (tests/test_scheduler.py, 20 sessions
at once); here each page's main figures must go through it, for the snapshot on screen.
"""

import pytest

from conftest import open_page, wait_for

PAGES = [  # (page, runner key, figures that must be shared views)
    ("pages/60_gan.py", "gan.2d", {"plane", "curves", "quality"}),
    ("pages/40_rnn.py", "rnn", {"curves", "probe", "input", "paths", "igrad"}),
    ("pages/75_clip.py", "clip", {"curves", "sim", "pca", "templates"}),
    ("pages/70_ssl.py", "ssl", {"curves", "pca0", "pca1", "spectrum"}),
    ("pages/50_attention.py", "attn.kr", {"fit", "curves", "attn"}),
    ("pages/30_optimizers.py", "optimizers", {"race", "curves"}),
    ("pages/85_teachers.py", "teach.kd", {"curves", "soft", "sim"}),
]


@pytest.mark.parametrize("page,key,shared", PAGES, ids=[p[0].split("_", 1)[1][:-3] for p in PAGES])
def test_a_live_pages_figures_are_shared_views_of_the_snapshot_on_screen(page, key, shared):
    at = open_page(page)
    at.button(key=f"{key}.play").click().run()
    runner = wait_for(at, key, lambda r: r.latest is not None and r.latest.step > 0)  # paused, then redrawn
    assert not at.exception
    current = {k[0] for k, (stamp, _fig, _t) in runner._views.items() if stamp[0] == runner.snapshots_seen}
    assert shared <= current, f"not shared views of the snapshot on screen: {sorted(shared - current)}"
