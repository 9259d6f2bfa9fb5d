"""Typed errors that a UI can show in its own language.

A :class:`LabError` carries an English message template and its parameters. ``str(error)`` is
the English sentence (what the CLI prints); the app translates ``error.template`` with the
session's gettext catalogue and fills in ``error.params``, so the same error reads in 中文 or in
English. Templates are marked with :func:`N_`, which does nothing at run time but lets the
extractor (scripts/i18n.py) find them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LabError", "Msg", "N_"]


def N_(template: str) -> str:
    """Marks an error template for translation (returns it unchanged)."""
    return template


class LabError(Exception):
    """An error with an English ``template`` (``str.format`` fields) and the ``params`` that fill it.

    ``LabError("plain text")`` without parameters keeps the text as it is (braces included).
    """

    def __init__(self, template: str, **params: Any) -> None:
        self.template = template
        self.params = params
        super().__init__(self.render(template))

    def __reduce__(self):  # pickled across the worker pipe with its template and parameters
        return (_rebuild, (type(self), self.template, self.params, self.__dict__))

    def render(self, template: str) -> str:
        """``template`` (the English one, or its translation) filled with this error's parameters."""
        if not self.params:
            return template
        try:
            return template.format(**self.params)
        except (KeyError, IndexError, ValueError):  # a translation that lost a field: fall back to English
            return self.template.format(**self.params)


def _rebuild(cls: type, template: str, params: dict, state: dict) -> LabError:
    err = cls.__new__(cls)
    LabError.__init__(err, template, **params)
    err.__dict__.update(state)
    return err


class Msg(str):
    """A status message (a trainer's "finished…", "diverged…") that a UI can show in its own language.

    It *is* its English text (a ``str``: the CLI prints it, tests compare it) and also carries the
    English ``template`` and its ``params``, as :class:`LabError` does.
    """

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, *, english: str | None = None, **params: Any) -> "Msg":
        """``english`` overrides the English text (a sentence made from the template), not the template."""
        obj = super().__new__(cls, english if english is not None else (template.format(**params) if params else template))
        obj.template, obj.params = template, params
        return obj

    def __reduce__(self):  # across the worker pipe with its template and parameters
        return (_rebuild_msg, (self.template, self.params))

    def render(self, template: str) -> str:
        """``template`` (the English one, or its translation) filled with this message's parameters."""
        try:
            return template.format(**self.params) if self.params else template
        except (KeyError, IndexError, ValueError):
            return str(self)


def _rebuild_msg(template: str, params: dict) -> Msg:
    return Msg(template, **params)

