"""Typed errors that a UI can show in its own language.

A :class:`LabError` carries an English message template and its parameters. ``str(error)`` is
the English sentence (what the CLI prints); the app translates ``error.template`` with the
session's gettext catalogue and fills in ``error.params``, so the same error reads in 中文 or in
English. Templates are marked with :func:`N_`, which does nothing at run time but lets the
extractor (scripts/i18n.py) find them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["LabError", "Msg", "N_", "fill"]


def N_(template: str) -> str:
    """Marks an error template for translation (returns it unchanged)."""
    return template


def fill(template: str, params: dict[str, Any], fallback: str | None = None) -> str:
    """``template`` filled with ``params`` (as it is when there are none). A template whose fields do not
    match (a translation that lost one) gives ``fallback``, the English text, when one is given."""
    if not params:
        return template
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        if fallback is None:
            raise
        return fallback


class _Templated:
    """What :class:`LabError` and :class:`Msg` share: an English ``template``, its ``params``, and the
    rendering of a translated template with them (``str(self)`` is the English text)."""

    template: str
    params: dict[str, Any]

    def render(self, template: str, params: dict[str, Any] | None = None) -> str:
        """``template`` (the English one, or its translation) filled with ``params`` (default: these);
        a translation that lost a field gives the English text."""
        return fill(template, self.params if params is None else params, str(self))


class LabError(_Templated, Exception):
    """An error with an English ``template`` (``str.format`` fields) and the ``params`` that fill it.

    ``LabError("plain text")`` without parameters keeps the text as it is (braces included).
    """

    def __init__(self, template: str, **params: Any) -> None:
        self.template = template
        self.params = params
        super().__init__(fill(template, params))

    def __reduce__(self) -> tuple[Callable[..., LabError], tuple[Any, ...]]:
        # pickled across the worker pipe with its template and parameters
        return (_rebuild, (type(self), self.template, self.params, self.__dict__))


def _rebuild(cls: type[LabError], template: str, params: dict[str, Any], state: dict[str, Any]) -> LabError:
    err = cls.__new__(cls)
    LabError.__init__(err, template, **params)
    err.__dict__.update(state)
    return err


class Msg(_Templated, str):
    """A status message (a trainer's "finished…", "diverged…") that a UI can show in its own language.

    It *is* its English text (a ``str``: the CLI prints it, tests compare it) and also carries the
    English ``template`` and its ``params``, as :class:`LabError` does.
    """

    def __new__(cls, template: str, *, english: str | None = None, **params: Any) -> Msg:
        """``english`` overrides the English text (a sentence made from the template), not the template."""
        obj = super().__new__(cls, english if english is not None else fill(template, params))
        obj.template, obj.params = template, params
        return obj

    def __reduce__(self) -> tuple[Callable[..., Msg], tuple[Any, ...]]:
        # across the worker pipe with its template, parameters and English text
        return (_rebuild_msg, (self.template, self.params, str(self)))


def _rebuild_msg(template: str, params: dict[str, Any], english: str | None = None) -> Msg:
    return Msg(template, english=english, **params)
