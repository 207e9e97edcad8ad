"""Static files for ``WSGIApp``: python-engineio's URL rules.

A rule maps a URL path to a file, or a URL prefix (with or without a trailing
slash) to a folder; its value is a filename or ``{'filename': ...,
'content_type': ...}``. The longest matching prefix wins, at a ``/`` boundary.
A URL ending in ``/`` gets the folder's default file: the ``''`` rule's
filename (and its content type, if it gives one), else ``index.html``.
Without a content type, the extension decides.

Where python-engineio fails (a folder named by a URL without its trailing
slash, a ``..`` segment it lets through), the URL names no file here and the
request goes on to the wrapped application.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: python-engineio's content types by extension, so that the same files get
#: the same header; other extensions get their standard type (mimetypes)
CONTENT_TYPES = {
    'css': 'text/css',
    'gif': 'image/gif',
    'html': 'text/html',
    'jpg': 'image/jpeg',
    'js': 'application/javascript',
    'json': 'application/json',
    'png': 'image/png',
    'txt': 'text/plain',
}
DEFAULT_FILE = 'index.html'


@dataclass(frozen=True, slots=True)
class StaticFile:
    filename: str
    content_type: str


def resolve(path: str, rules: Mapping[str, Any]) -> StaticFile | None:
    """The file a URL path names under these rules, or None."""
    rule, rest = _match(path, rules)
    if rule is None:
        return None
    if '\x00' in rest or '..' in rest.split('/'):
        return None  # never outside the rule's folder
    if isinstance(rule, dict):
        filename, content_type = os.fspath(rule['filename']), rule.get('content_type')
    else:
        filename, content_type = os.fspath(rule), None  # a str, or a pathlib.Path
    if filename.endswith('/') and rest.startswith('/'):
        rest = rest[1:]
    filename += rest
    if path.endswith('/') and not filename.endswith('/') and os.path.isdir(filename):
        filename += '/'
    if filename.endswith('/'):
        default = rules.get('', DEFAULT_FILE)
        if isinstance(default, dict):
            filename += os.fspath(default['filename'])
            content_type = default.get('content_type', content_type)
        else:
            filename += os.fspath(default)
    if not os.path.isfile(filename):
        return None
    return StaticFile(filename, content_type or guess_type(filename))


def guess_type(filename: str) -> str:
    extension = os.path.splitext(filename)[1][1:]
    if extension in CONTENT_TYPES:
        return CONTENT_TYPES[extension]
    guessed, encoding = mimetypes.guess_type(filename, strict=False)
    # a compressed file ('.tar.gz') is served as it is, not as what it decompresses to
    return guessed if guessed and encoding is None else 'application/octet-stream'


def _match(path: str, rules: Mapping[str, Any]) -> tuple[Any, str]:
    """(rule, the rest of the path after the rule's URL) or (None, '')."""
    if path in rules and path:
        return rules[path], ''
    head = path
    while head:
        head = head.rpartition('/')[0]
        # '' is the default-file rule, never a prefix
        if head and head in rules:
            return rules[head], path[len(head):]
        if head + '/' in rules:
            return rules[head + '/'], path[len(head):]
    return None, ''
