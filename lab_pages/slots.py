"""A browser session's slots in the server-wide trainer registry (vae_core.sessions).

Each page that trains keeps its own :class:`~vae_core.sessions.TrainerHandle` in
``st.session_state`` under its own key: the Train page's trainer and the Compare page's live
pair each count towards the server's cap, and each stops when its session ends.
"""

from __future__ import annotations

import functools
from typing import Callable

import streamlit as st

from vae_core import sessions


def session_handle(key: str, label: str = "") -> sessions.TrainerHandle:
    """This browser session's handle under ``key`` (made on first use, kept in session_state only)."""
    h = st.session_state.get(key)
    if h is None or h.closed:
        h = sessions.default_registry().open(label=label, probe=session_probe())
        st.session_state[key] = h
    return h


def session_probe() -> Callable[[], bool] | None:
    """A callable that says whether this Streamlit session is still connected (None outside a server)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not Runtime.exists():
            return None
        # a partial, not a lambda: a function defined here would hold the page's globals
        return functools.partial(Runtime.instance().is_active_session, ctx.session_id)
    except Exception:  # internal API moved: fall back to the page's own heartbeat
        return None
