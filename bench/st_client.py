"""A Streamlit client without a browser: one attendee, spoken at the protocol level.

The browser talks to a Streamlit server over one websocket, ``/_stcore/stream``, in protobufs:
``BackMsg`` up, ``ForwardMsg`` down (``streamlit.proto``). :class:`StClient` speaks the same
messages, renders nothing, and keeps just enough of the page to act on it:

- **Handshake.** The websocket's subprotocol list carries ``streamlit`` (then an XSRF token and a
  session id to resume, both left out: the XSRF check applies only to requests with an Origin
  header, which this client does not send). The server opens a session and waits; the client's
  first ``rerun_script`` (a ``ClientState``: ``query_string``, ``page_name`` = the URL path such as
  ``train``, ``context_info.locale``) runs the page. Later reruns send the ``page_script_hash`` of
  ``new_session`` instead, and a page switch sends the target's hash from the ``navigation`` message.
- **A run.** ``new_session`` starts it (``metadata.run``: its id, and the fragments it reruns,
  none for a full run); deltas add elements and blocks at ``metadata.delta_path`` (a path of
  indices from the root container: 0 main, 1 sidebar); ``script_finished`` ends it
  (``FINISHED_EARLY_FOR_RERUN`` when ``st.rerun()`` chains another run). When a full run ends,
  elements it did not send again are gone; when a fragment run ends, so are that fragment's.
- **Widgets.** A widget's id is ``$$ID-<hash>-<user key>``, so a widget is found by its key (or
  its label). A rerun carries ``widget_states``: the values this client has set (a slider sends
  ``double_array_value``, a select slider the chosen options' labels, a button a one-shot
  ``trigger_value``). A widget inside a fragment reruns only that fragment (``fragment_id``). When
  the server sets a widget's value itself (``set_value``), the client forgets its own.
- **Fragments with run_every.** An ``auto_rerun`` message announces a fragment and its interval;
  a browser then sends ``rerun_script`` with that ``fragment_id`` and ``is_auto_rerun`` every
  interval while the page is on screen. :meth:`StClient.idle` does the same; a full run forgets
  the timers (the next full run announces the ones still drawn), ``stop_auto_rerun`` ends some.

Each request waits for its run to finish (one request in flight, as a person waits for the page),
and :class:`Rerun` records send → ``script_finished``. Every element records when its delta
arrived, so "send → this image changed" is ``node.at - rerun.sent``. Exceptions (an exception
element, a compile error), a dropped connection and page-not-found are collected in
:attr:`StClient.errors`. Requests go to the URL given, normally http://127.0.0.1:PORT.

    .venv/bin/python -m bench.st_client [--url http://127.0.0.1:8501] [PATH]   # print a page's widgets
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Block_pb2 import Block
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState

ID_PREFIX = "$$ID-"  # generated widget ids: $$ID-<hash>-<user key>
FINISHED_EARLY = ForwardMsg.FINISHED_EARLY_FOR_RERUN  # a run that st.rerun() cut short: the chain goes on


class ClientError(RuntimeError):
    """The connection dropped, a run did not finish in time, or a widget is not on the page."""


@dataclass
class Node:
    """One element or block of the page, as the last delta at its path left it."""

    path: tuple[int, ...]  # delta path from the root container (0 main, 1 sidebar)
    proto: Element | Block
    kind: str  # the element's type ("slider", "imgs", "progress"…) or "block"
    fragment_id: str  # the fragment that drew it, "" outside fragments
    run_id: str  # the script run that sent it
    at: float  # time.perf_counter() when its delta arrived

    @property
    def widget(self) -> Any:
        """The element's own message (``Slider``, ``Button``, ``ImageList``…), or the block."""
        return self.proto if isinstance(self.proto, Block) else getattr(self.proto, self.kind)

    @property
    def id(self) -> str:
        """The widget id, "" for elements that are not widgets."""
        return str(getattr(self.widget, "id", "") or "")

    @property
    def key(self) -> str | None:
        """The user key, the tail of a generated widget id (None without one)."""
        if not self.id.startswith(ID_PREFIX):
            return None
        key = self.id[len(ID_PREFIX) :].split("-", 1)[-1]
        return None if key == "None" else key

    @property
    def label(self) -> str:
        return str(getattr(self.widget, "label", "") or "")

    @property
    def text(self) -> str:
        """What the element shows as text: markdown, heading, alert, progress, exception, captions."""
        w = self.widget
        if self.kind == "imgs":
            return " ".join(i.caption for i in w.imgs)
        if self.kind == "exception":
            return f"{w.type}: {w.message}"
        for name in ("body", "text", "label"):
            if isinstance(value := getattr(w, name, None), str) and value:
                return value
        return ""

    @property
    def src(self) -> str:
        """An image list's first source (a data URL or a /media URL), "" for other elements."""
        return self.widget.imgs[0].url if self.kind == "imgs" and self.widget.imgs else ""


@dataclass
class Rerun:
    """One request and the run it caused: send → ``script_finished`` (the last one of a st.rerun() chain)."""

    what: str  # "open /train", "set explorer_dim_0", "click train_start", "auto <fragment>"
    page: str  # the URL path the client was on
    sent: float  # time.perf_counter() at send
    finished: float = float("nan")
    status: int = -1  # ForwardMsg.ScriptFinishedStatus

    @property
    def latency_s(self) -> float:
        return self.finished - self.sent


@dataclass
class _AutoRerun:
    interval: float
    due: float


@dataclass
class StClient:
    """One attendee: a websocket session that opens pages, sets widgets and presses buttons."""

    url: str  # the server, e.g. http://127.0.0.1:8501
    locale: str = "en-US"  # st.context.locale: the lab's language follows it
    timeout_s: float = 120.0  # the longest a run may take before it counts as an error
    name: str = ""  # for messages
    nodes: dict[tuple[int, ...], Node] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # exceptions, drops, timeouts, page not found
    reruns: list[Rerun] = field(default_factory=list)  # every finished request, in order

    def __post_init__(self) -> None:
        self.page = ""  # the URL path of the current page ("" home, "train", "explorer"…)
        self.page_hash = ""  # its page_script_hash (new_session)
        self.pages: dict[str, str] = {}  # url path -> page_script_hash (navigation)
        self.values: dict[str, WidgetState] = {}  # widget id -> the value this client set
        self.auto: dict[str, _AutoRerun] = {}  # fragment id -> its run_every timer
        self.run_id, self.run_fragments = "", ()  # the run in progress (new_session)
        self.on_message: Callable[[ForwardMsg, float], None] | None = None  # a hook for benches
        self.connect_s = math.nan  # seconds the websocket handshake took
        self._ws: Any = None
        self._reader: asyncio.Task | None = None
        self._waiter: asyncio.Future[tuple[float, int]] | None = None
        self._closed = False

    # ---------------------------------------------------------------- connection
    async def connect(self) -> None:
        """Open the websocket (no page runs yet)."""
        from websockets.asyncio.client import connect

        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        t0 = time.perf_counter()
        self._ws = await connect(
            f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/_stcore/stream",
            subprotocols=["streamlit"],  # type: ignore[list-item]
            max_size=None,  # a page's images and figures come in large frames
            # compression: permessage-deflate, as browsers negotiate it (the server's CPU pays for it)
            proxy=None,
            open_timeout=self.timeout_s,  # a browser waits for a busy server (websockets' default: 10 s)
        )
        self.connect_s = time.perf_counter() - t0
        self._reader = asyncio.create_task(self._read(), name=f"st-client-read {self.name}")

    async def close(self) -> None:
        """Close the websocket: the server ends the session after its TTL (its trainer with it)."""
        self._closed = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def __aenter__(self) -> StClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- requests
    async def open(self, path: str = "") -> Rerun:
        """Go to a page by its URL path (``/train``, ``explorer?x=1``, "" for home) and wait for its run."""
        path, _, query = path.lstrip("/").partition("?")
        first = not self.page_hash
        self.page, self.values = path, {}
        msg = self._client_state(fragment_id="", query=query)
        msg.rerun_script.page_name = path
        msg.rerun_script.page_script_hash = "" if first else self.pages.get(path, "")
        return await self._request(msg, f"open /{path}")

    async def rerun(self, fragment_id: str = "", auto: bool = False, what: str = "rerun") -> Rerun:
        """Rerun the page (or one fragment) with the current widget values."""
        msg = self._client_state(fragment_id=fragment_id)
        msg.rerun_script.is_auto_rerun = auto
        return await self._request(msg, what)

    async def set_value(self, key: str, value: Any) -> Rerun:
        """Set a widget (found by key, else by label) to ``value`` and rerun, as the browser does on release."""
        node = self.widget(key)
        state = _encode(node, value)
        self.values[node.id] = state
        return await self.rerun(node.fragment_id, what=f"set {key}")

    async def click(self, key: str) -> Rerun:
        """Press a button (found by key, else by label): a trigger value for one rerun."""
        node = self.widget(key)
        if getattr(node.widget, "disabled", False):
            raise ClientError(f"{self.name}: button {key!r} is disabled")
        msg = self._client_state(fragment_id=node.fragment_id)
        msg.rerun_script.widget_states.widgets.append(WidgetState(id=node.id, trigger_value=True))
        return await self._request(msg, f"click {key}")

    async def idle(self, seconds: float, until: Callable[[], bool] | None = None) -> list[Rerun]:
        """Stay on the page for ``seconds`` (or until ``until()``), sending each ``run_every`` fragment's
        rerun when it is due, as the browser's timers do. A rerun that came due while another ran goes
        out as soon as that one finishes (the server would have queued it)."""
        done: list[Rerun] = []
        end = time.perf_counter() + seconds
        while (now := time.perf_counter()) < end and not (until and until()):
            if self.auto:
                fid, timer = min(self.auto.items(), key=lambda kv: kv[1].due)
                if timer.due <= now:
                    timer.due = max(timer.due + timer.interval, now)
                    done.append(await self.rerun(fid, auto=True, what="auto"))
                    continue
                wait = min(timer.due, end) - now
            else:
                wait = end - now
            await asyncio.sleep(min(wait, 0.25))
            self._check_open()
        return done

    # ---------------------------------------------------------------- the page
    def iter_nodes(self, kind: str | None = None) -> Iterator[Node]:
        """Elements in page order (main, then sidebar), optionally of one kind."""
        for path in sorted(self.nodes):
            node = self.nodes[path]
            if kind is None or node.kind == kind:
                yield node

    def find(self, key: str | None = None, kind: str | None = None, text: str | None = None) -> Node | None:
        """The first element with this key (or label), of this kind, whose text contains ``text``."""
        for node in self.iter_nodes(kind):
            if key is not None and key not in (node.key, node.label):
                continue
            if text is not None and text not in node.text:
                continue
            return node
        return None

    def widget(self, key: str) -> Node:
        """The widget with this key (or label); raises when the page has none."""
        node = self.find(key=key) if key else None
        if node is None or not node.id:
            raise ClientError(f"{self.name}: no widget {key!r} on /{self.page}")
        return node

    def texts(self) -> list[str]:
        return [t for n in self.iter_nodes() if (t := n.text)]

    # ---------------------------------------------------------------- internals
    def _client_state(self, fragment_id: str, query: str = "") -> BackMsg:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = query
        cs.page_script_hash = self.page_hash
        cs.fragment_id = fragment_id
        cs.context_info.locale = self.locale
        cs.context_info.timezone = "UTC"
        cs.context_info.url = f"{self.url}/{self.page}"
        cs.widget_states.widgets.extend(self.values.values())
        return msg

    def _check_open(self) -> None:
        if self._closed or self._reader is None or self._reader.done():
            raise ClientError(f"{self.name}: the connection is closed")

    async def _request(self, msg: BackMsg, what: str) -> Rerun:
        self._check_open()
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        r = Rerun(what, self.page, time.perf_counter())
        await self._ws.send(msg.SerializeToString())
        try:
            r.finished, r.status = await asyncio.wait_for(waiter, self.timeout_s)
        except asyncio.TimeoutError:
            self.errors.append(f"{what} on /{self.page}: no script_finished in {self.timeout_s:.0f} s")
            raise ClientError(self.errors[-1]) from None
        finally:
            self._waiter = None
        self.reruns.append(r)
        return r

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self._ws:
                at = time.perf_counter()
                fm = ForwardMsg()
                fm.ParseFromString(raw)
                self._handle(fm, at)
                if self.on_message is not None:
                    self.on_message(fm, at)
        except (ConnectionClosed, OSError) as exc:
            if not self._closed:
                self.errors.append(f"connection lost on /{self.page}: {exc!r}")
        except Exception as exc:  # a message this client could not read: as bad as a drop
            self.errors.append(f"client failed on a message on /{self.page}: {exc!r}")
        else:
            if not self._closed:
                self.errors.append(f"the server closed the connection on /{self.page}")
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ClientError(f"{self.name}: the connection is closed"))

    def _handle(self, fm: ForwardMsg, at: float) -> None:
        kind = fm.WhichOneof("type")
        if kind == "delta":
            self._delta(fm, at)
        elif kind == "new_session":
            self.run_id = fm.metadata.run.script_run_id
            self.run_fragments = tuple(fm.metadata.run.fragment_ids)
            self.page_hash = fm.new_session.page_script_hash
            if not self.run_fragments:
                self.auto.clear()  # a full run announces again the fragments still drawn
        elif kind == "script_finished":
            status = fm.script_finished
            if status != FINISHED_EARLY:
                self._drop_stale()
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result((at, status))
        elif kind == "navigation":  # st.navigation: new_session named the main script, this names the page
            self.pages = {p.url_pathname: p.page_script_hash for p in fm.navigation.app_pages}
            self.page_hash = fm.navigation.page_script_hash or self.page_hash
        elif kind == "auto_rerun":
            ar = fm.auto_rerun
            self.auto[ar.fragment_id] = _AutoRerun(ar.interval, at + ar.interval)
        elif kind == "stop_auto_rerun":
            for fid in fm.stop_auto_rerun.fragment_ids:
                self.auto.pop(fid, None)
        elif kind == "session_event" and fm.session_event.HasField("script_compilation_exception"):
            self.errors.append(
                f"compile error on /{self.page}: {fm.session_event.script_compilation_exception}"
            )
        elif kind == "page_not_found":
            self.errors.append(f"page not found: /{self.page}")
        elif kind == "ref_hash":  # only sent for hashes a client says it caches; this one caches none
            self.errors.append(f"unexpected cached-message reference on /{self.page}")

    def _delta(self, fm: ForwardMsg, at: float) -> None:
        d, path = fm.delta, tuple(fm.metadata.delta_path)
        which = d.WhichOneof("type")
        if which == "new_element":
            el = d.new_element
            kind = el.WhichOneof("type") or "empty"
            node = Node(path, el, kind, d.fragment_id, self.run_id, at)
            if kind == "exception":
                self.errors.append(f"exception on /{self.page}: {node.text[:300]}")
            if node.id and getattr(node.widget, "set_value", False):
                self.values.pop(node.id, None)  # the server set it: its value wins
            self.nodes[path] = node
        elif which == "add_block":
            self.nodes[path] = Node(path, d.add_block, "block", d.fragment_id, self.run_id, at)
        # new_transient (spinners, toasts) and arrow_add_rows leave the tree as it is

    def _drop_stale(self) -> None:
        """What a finished run did not send again is gone: all of it after a full run, a fragment's own
        elements after a fragment run."""
        frags = set(self.run_fragments)
        self.nodes = {
            p: n
            for p, n in self.nodes.items()
            if n.run_id == self.run_id or (frags and n.fragment_id not in frags)
        }


def _encode(node: Node, value: Any) -> WidgetState:
    """The ``WidgetState`` a browser sends for ``value`` in this widget."""
    w, state = node.widget, WidgetState(id=node.id)
    if node.kind == "slider":
        values = value if isinstance(value, (list, tuple)) else [value]
        if w.type == Slider.SELECT_SLIDER:
            labels = [str(v) for v in values]
            if bad := [v for v in labels if v not in w.options]:
                raise ClientError(f"{node.key}: {bad} not among {list(w.options)}")
            state.string_array_value.data.extend(labels)
        else:
            state.double_array_value.data.extend(float(v) for v in values)
    elif node.kind == "number_input":
        if w.data_type == NumberInput.INT:
            state.int_value = int(value)
        else:
            state.double_value = float(value)
    elif node.kind == "checkbox":
        state.bool_value = bool(value)
    elif node.kind in ("selectbox", "radio", "text_input", "text_area"):
        state.string_value = str(value)
    elif node.kind == "multiselect":
        state.string_array_value.data.extend(str(v) for v in value)
    elif node.kind == "bidi_component":  # st.components.v2: the browser sends its whole state as JSON
        state.json_value = json.dumps(value)
    else:
        raise ClientError(f"setting a {node.kind} is not supported (widget {node.key!r})")
    return state


def slider_value(node: Node, fraction: float) -> float:
    """A slider's value at ``fraction`` of its range, on its step grid."""
    w = node.widget
    steps = round((w.max - w.min) / w.step) if w.step > 0 else 0
    k = round(min(1.0, max(0.0, fraction)) * steps)
    return float(w.min + k * w.step) if steps else float(w.min)


async def _show(url: str, path: str) -> int:
    async with StClient(url, name="show") as c:
        r = await c.open(path)
        print(
            f"/{path}: {r.latency_s * 1000:.0f} ms, {len(c.nodes)} elements, fragments with run_every: {c.auto}"
        )
        for n in c.iter_nodes():
            if n.id:
                print(f"  {n.kind:14s} key={n.key!s:28s} label={n.label[:50]!r}")
        for e in c.errors:
            print("error:", e)
        return 1 if c.errors else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8501", help="a running `streamlit run app.py`")
    p.add_argument("path", nargs="?", default="", help="the page's URL path, e.g. train or explorer")
    args = p.parse_args()
    return asyncio.run(_show(args.url, args.path))


if __name__ == "__main__":
    raise SystemExit(main())
