"""dlviz: small deep-learning models train live in the browser; the pictures make textbook phenomena visible.

Start with ``streamlit run app.py``. Pages live in ``pages/``; each is listed on the home page from its docstring.
``streamlit run`` finds ``app`` below (a Streamlit with ``st.App``) and serves this file with the live feed's
routes (browsers draw a training run's charts from one shared feed: dlviz.ui.feed); each session runs this file
as ``__main__``.
"""

import streamlit as st

from dlviz import procs
from dlviz.i18n import _
from dlviz.scheduler import scheduler
from dlviz.ui import lecture_mode, render_sidebar
from dlviz.ui.settings import init_from_link
from dlviz.ui.topics import discover, mark_app_ran, pending_redirect

TOPICS = discover()


def home() -> None:
    st.title(_("dlviz: deep learning, training live"))
    st.markdown(_("Each page trains a small model **in front of you**, on data that ships with the app, so every "
                  "demo works offline. Pick a topic, press **▶ Start**, and move the sliders. "
                  "The link in the address bar reproduces the run: share it."))
    cols = st.columns(3)
    for i, t in enumerate(TOPICS):
        with cols[i % 3].container(border=True):
            if t.thumbnail is not None:
                st.image(str(t.thumbnail), width="stretch")
            st.page_link(str(t.path), label=f"**{_(t.title)}**", icon=t.icon)  # docstrings: dlviz.i18n_extract
            st.caption(_(t.summary))


def main() -> None:
    procs.use_processes()  # runs train in worker processes: this one only draws (DLVIZ_TRAIN_PROCESS=0: here)
    procs.warm_up()
    with scheduler().gate.full_run():  # on a crowded server a page's full run goes before redraws and training
        run_app()


def run_app() -> None:
    mark_app_ran()
    goto = pending_redirect()
    init_from_link(goto[1] if goto is not None else None)  # the link's language: the navigation's titles use it
    # After the link is read: a cold ?lecture=1 link opens with the sidebar closed (it took 300 px of a 1280 px projector).
    st.set_page_config(page_title="dlviz", page_icon="🧠", layout="wide",
                       initial_sidebar_state="collapsed" if lecture_mode() else "auto")
    pages = [st.Page(home, title=_("Home"), icon="🏠", default=True)]
    by_path = {str(t.path): st.Page(str(t.path), title=_(t.title), icon=t.icon, url_path=t.slug) for t in TOPICS}
    nav = st.navigation(pages + list(by_path.values()))
    if goto is not None and goto[0] in by_path:  # a cold link to a page: go there, keeping its settings
        st.switch_page(by_path[goto[0]], query_params=goto[1])
    render_sidebar()
    nav.run()


if __name__ == "__main__":  # a session's script run
    main()
elif hasattr(st, "App"):  # imported by `streamlit run app.py` to serve it (st.App): the app, and the live feed
    from dlviz.ui.feed import routes

    app = st.App(__file__, routes=routes())
