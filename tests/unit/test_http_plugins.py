"""The slate.http entry-point hook: zero plugins, a good one, a broken one."""

from __future__ import annotations

import importlib.metadata as md
import logging

from flask import Flask

from appliance.config import Layout
from appliance.http import create_app, load_plugins


class FakeEntryPoint:
    def __init__(self, name, target):
        self.name, self.value, self._target = name, f"tests:{name}", target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_zero_plugins_is_fine(monkeypatch, home):
    monkeypatch.setattr("appliance.http.entry_points", lambda group: [])
    app = create_app(Layout(home))
    assert app.extensions["slate"].layout.home == home
    assert load_plugins(Flask("x"), group="slate.no-such-group") == []


def test_plugins_called_with_app_and_broken_ones_skipped(monkeypatch, home, caplog):
    seen = []

    def good(app):
        seen.append(app)
        app.add_url_rule("/console", "console", lambda: "hello")

    eps = [FakeEntryPoint("broken", ImportError("no module webui")), FakeEntryPoint("good", good)]
    monkeypatch.setattr("appliance.http.entry_points", lambda group: eps)
    with caplog.at_level(logging.ERROR):
        app = create_app(Layout(home))
    assert seen == [app]
    assert app.test_client().get("/console").data == b"hello"
    assert "broken" in caplog.text


def test_installed_entry_points_are_in_the_group():
    # Whatever is installed under slate.http must be loadable by name (no typo'd group).
    for ep in md.entry_points(group="slate.http"):
        assert ep.value.count(":") == 1
