"""``WSGIApp(static_files=...)`` resolves URLs as python-engineio does.

Files, folders with and without a trailing slash (on the key and on the
folder name), the ``''`` default-file key, dict rules with a content type,
content types by extension, and what falls through to the wrapped app or 404.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .engines import OURS, PYEIO, fallback, outcomes, running

FILES = {
    'single.html': '<p>single</p>',
    'public/index.html': '<p>public index</p>',
    'public/app.js': 'console.log(1)',
    'public/style.css': 'p {}',
    'public/data.json': '{"a": 1}',
    'public/notes.txt': 'notes',
    'public/image.gif': 'GIF89a',
    'public/photo.jpg': 'JPEG',
    'public/logo.png': 'PNG',
    'public/README': 'no extension',
    'public/blob.bin': 'binary',
    'public/sub/index.html': '<p>sub index</p>',
    'public/sub/page.html': '<p>sub page</p>',
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def fetch(engine: str, static_files: dict, urls: list[str], wsgi_app=fallback) -> list[tuple]:
    """Per URL: (status, Content-Type, body) or ('app', path) when the wrapped app answered."""
    results = []
    with running(engine, wsgi_app=wsgi_app, static_files=static_files) as (_, app):
        for url in urls:
            res = app.get(url, expect_errors=True)
            if res.body.startswith(b'fallback '):
                results.append(('app', res.body[len(b'fallback '):].decode()))
            else:
                results.append((res.status_int, res.headers['Content-Type'], res.text))
    return results


def same_on_both(static_files: dict, urls: list[str], **kwargs) -> list[tuple]:
    found = outcomes(fetch, static_files, urls, **kwargs)
    assert found[OURS] == found[PYEIO], found
    return found[OURS]


def test_single_files_and_content_types_by_extension(tree):
    rules = {'/': str(tree / 'single.html')}
    names = ['app.js', 'style.css', 'data.json', 'notes.txt', 'image.gif', 'photo.jpg',
             'logo.png', 'README', 'blob.bin']
    rules.update({f'/f/{name}': str(tree / 'public' / name) for name in names})
    got = same_on_both(rules, ['/'] + [f'/f/{name}' for name in names])
    assert [(status, ctype) for status, ctype, _ in got] == [(200, t) for t in [
        'text/html', 'application/javascript', 'text/css', 'application/json', 'text/plain',
        'image/gif', 'image/jpeg', 'image/png', 'application/octet-stream',
        'application/octet-stream']]
    assert got[0][2] == '<p>single</p>'


def test_a_dict_rule_gives_the_content_type(tree):
    rules = {'/': {'filename': str(tree / 'single.html'), 'content_type': 'text/plain'}}
    assert same_on_both(rules, ['/']) == [(200, 'text/plain', '<p>single</p>')]


FOLDER_URLS = ['/static/app.js', '/static/sub/page.html', '/static/', '/static/sub/',
               '/static/missing.js', '/static/sub/missing/', '/staticx/app.js', '/other']
FOLDER_EXPECTED = [
    (200, 'application/javascript', 'console.log(1)'),
    (200, 'text/html', '<p>sub page</p>'),
    (200, 'text/html', '<p>public index</p>'),
    (200, 'text/html', '<p>sub index</p>'),
    ('app', '/static/missing.js'),
    ('app', '/static/sub/missing/'),
    ('app', '/staticx/app.js'),
    ('app', '/other'),
]


@pytest.mark.parametrize('key', ['/static', '/static/'])
@pytest.mark.parametrize('slash', ['', '/'])
def test_a_folder_with_or_without_trailing_slashes(tree, key, slash):
    rules = {key: str(tree / 'public') + slash}
    if key.endswith('/') and not slash:
        # python-engineio fails on '/static/' here (it opens the folder as a file)
        urls = [u for u in FOLDER_URLS if u != '/static/']
        assert same_on_both(rules, urls) == [e for u, e in zip(FOLDER_URLS, FOLDER_EXPECTED,
                                                                   strict=True) if u != "/static/"]
        assert fetch(OURS, rules, ['/static/']) == [(200, 'text/html', '<p>public index</p>')]
    else:
        assert same_on_both(rules, FOLDER_URLS) == FOLDER_EXPECTED


def test_a_folder_at_the_root(tree):
    rules = {'/': str(tree / 'public') + '/'}
    assert same_on_both(rules, ['/', '/app.js', '/sub/', '/nothing.txt']) == [
        (200, 'text/html', '<p>public index</p>'),
        (200, 'application/javascript', 'console.log(1)'),
        (200, 'text/html', '<p>sub index</p>'),
        ('app', '/nothing.txt'),
    ]


def test_the_empty_key_names_the_default_file(tree):
    rules = {'/static': str(tree / 'public'), '': 'image.gif'}
    assert same_on_both(rules, ['/static/', '/static/sub/', '/static/app.js']) == [
        (200, 'image/gif', 'GIF89a'),
        ('app', '/static/sub/'),
        (200, 'application/javascript', 'console.log(1)'),
    ]


def test_the_empty_key_with_a_content_type(tree):
    rules = {'/static': str(tree / 'public'),
             '': {'filename': 'image.gif', 'content_type': 'text/plain'}}
    assert same_on_both(rules, ['/static/']) == [(200, 'text/plain', 'GIF89a')]


def test_a_folder_rule_with_a_content_type_applies_it_to_every_file(tree):
    rules = {'/static': {'filename': str(tree / 'public'), 'content_type': 'text/x-mine'}}
    assert same_on_both(rules, ['/static/app.js', '/static/']) == [
        (200, 'text/x-mine', 'console.log(1)'), (200, 'text/x-mine', '<p>public index</p>')]


def test_paths_out_of_the_folder_are_not_served(tree):
    rules = {'/static': str(tree / 'public')}
    assert same_on_both(rules, ['/static/../single.html', '/static/sub/../../single.html']) == [
        ('app', '/static/../single.html'), ('app', '/static/sub/../../single.html')]


def test_without_a_wrapped_app_unmatched_urls_get_404(tree):
    rules = {'/static': str(tree / 'public')}
    assert same_on_both(rules, ['/static/missing.js', '/nowhere'], wsgi_app=None) == [
        (404, 'text/plain', 'Not Found'), (404, 'text/plain', 'Not Found')]


# Where python-engineio fails with a 500 (it opens a folder as a file), this
# library passes the request on, as for any URL that names no file.

def test_a_folder_url_without_its_slash_names_no_file(tree):
    rules = {'/static': str(tree / 'public')}
    assert fetch(OURS, rules, ['/static', '/static/sub', '/static/..']) == [
        ('app', '/static'), ('app', '/static/sub'), ('app', '/static/..')]


def test_other_extensions_get_their_standard_type(tree):
    (tree / 'public' / 'icon.svg').write_text('<svg/>')
    rules = {'/static': str(tree / 'public')}
    assert fetch(PYEIO, rules, ['/static/icon.svg'])[0][1] == 'application/octet-stream'
    assert fetch(OURS, rules, ['/static/icon.svg']) == [(200, 'image/svg+xml', '<svg/>')]


def test_the_empty_key_is_never_a_prefix_rule(tree):
    # python-engineio also tries '' as the prefix of every top-level URL, which
    # hides a '/' folder rule: '/app.js' would look for 'index.html/app.js'
    rules = {'/': str(tree / 'public') + '/', '': 'index.html'}
    assert fetch(PYEIO, rules, ['/app.js']) == [('app', '/app.js')]
    assert fetch(OURS, rules, ['/app.js', '/']) == [
        (200, 'application/javascript', 'console.log(1)'),
        (200, 'text/html', '<p>public index</p>')]


def test_pathlib_paths_work_too(tree):
    # python-engineio needs str (it appends to the filename)
    rules = {'/static': tree / 'public', '/one': {'filename': tree / 'single.html'}}
    assert fetch(OURS, rules, ['/static/app.js', '/one']) == [
        (200, 'application/javascript', 'console.log(1)'), (200, 'text/html', '<p>single</p>')]
