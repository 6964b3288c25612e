"""dlviz: small deep-learning models train live in the browser; the pictures make textbook phenomena visible.

Start with ``streamlit run app.py``. Pages live in ``pages/``; each is listed on the home page from its docstring.
"""

import streamlit as st

from dlviz.ui import lecture_mode, render_sidebar
from dlviz.ui.topics import discover, mark_app_ran, pending_redirect

st.set_page_config(page_title="dlviz", page_icon="🧠", layout="wide",
                   initial_sidebar_state="collapsed" if lecture_mode() else "auto")

TOPICS = discover()


def home() -> None:
    st.title("dlviz: deep learning, training live")
    st.markdown("Each page trains a small model **in front of you**, on data that ships with the app, so every "
                "demo works offline. Pick a topic, press **▶ Start**, and move the sliders. "
                "The link in the address bar reproduces the run: share it.")
    cols = st.columns(3)
    for i, t in enumerate(TOPICS):
        with cols[i % 3].container(border=True):
            if t.thumbnail is not None:
                st.image(str(t.thumbnail), width="stretch")
            st.page_link(str(t.path), label=f"**{t.title}**", icon=t.icon)
            st.caption(t.summary)


pages = [st.Page(home, title="Home", icon="🏠", default=True)]
by_path = {str(t.path): st.Page(str(t.path), title=t.title, icon=t.icon, url_path=t.slug) for t in TOPICS}
nav = st.navigation(pages + list(by_path.values()))
mark_app_ran()
goto = pending_redirect()
if goto is not None and goto[0] in by_path:  # a cold link to a page: go there, keeping its settings
    st.switch_page(by_path[goto[0]], query_params=goto[1])
render_sidebar()
nav.run()
