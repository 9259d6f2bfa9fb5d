"""Typed errors that a UI can show in its own language.

A :class:`LabError` carries an English message template and its parameters. ``str(error)`` is
the English sentence (what the CLI prints); the app translates ``error.template`` with the
session's gettext catalogue and fills in ``error.params``, so the same error reads in 中文 or in
English. Templates are marked with :func:`N_`, which does nothing at run time but lets the
extractor (scripts/i18n.py) find them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LabError", "N_"]


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

