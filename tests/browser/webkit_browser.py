#!/usr/bin/python3
"""A WebKitGTK browser for the WebKit tests, driven by WebKitWebDriver, whose data lives in a
folder of the test's choosing, so that it outlives the browser (a restart keeps the service
worker, IndexedDB, localStorage, caches and cookies, as an iPad does).

MiniBrowser, Debian's WebKitGTK demo browser, starts every automation session with an
ephemeral profile, which cannot show a browser restart. This is Debian's WebKitGTK through
Python GI (python3-gi, gir1.2-webkit2-4.1), so it runs with Debian's python3, not the
project's virtual environment. WebKitWebDriver starts it with the arguments of the session's
`webkitgtk:browserOptions`: `--automation` and `--data-dir=<folder>`.
"""

import argparse
import sys
from pathlib import Path

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("WebKit2", "4.1")
from gi.repository import Gtk, WebKit2  # noqa: E402

WIDTH, HEIGHT = 820, 1180  # an iPad Air held in portrait, in CSS pixels


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--automation", action="store_true")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("url", nargs="?")
    args, _ = parser.parse_known_args()

    root = Path(args.data_dir)
    manager = WebKit2.WebsiteDataManager(
        base_data_directory=str(root / "data"), base_cache_directory=str(root / "cache")
    )
    context = WebKit2.WebContext(website_data_manager=manager)
    cookies = manager.get_cookie_manager()
    cookies.set_persistent_storage(
        str(root / "cookies.sqlite"), WebKit2.CookiePersistentStorage.SQLITE
    )
    cookies.set_accept_policy(WebKit2.CookieAcceptPolicy.NO_THIRD_PARTY)
    windows: list[Gtk.Window] = []

    def new_view() -> WebKit2.WebView:
        settings = WebKit2.Settings(
            enable_developer_extras=True, enable_write_console_messages_to_stdout=True
        )
        view = WebKit2.WebView(
            web_context=context, settings=settings, is_controlled_by_automation=args.automation
        )
        window = Gtk.Window()
        window.set_default_size(WIDTH, HEIGHT)
        window.add(view)
        windows.append(window)

        def closed(*_: object) -> None:
            windows.remove(window)
            window.destroy()
            if not windows:
                Gtk.main_quit()

        view.connect("close", closed)
        window.connect("delete-event", lambda *_: closed() or True)
        window.show_all()
        return view

    if args.automation:
        context.set_automation_allowed(True)

        def started(_context: WebKit2.WebContext, session: WebKit2.AutomationSession) -> None:
            info = WebKit2.ApplicationInfo()
            info.set_name("WalkthroughWebKit")
            info.set_version(1, 0, 0)
            session.set_application_info(info)
            session.connect("create-web-view", lambda _session: new_view())

        context.connect("automation-started", started)
    else:
        new_view().load_uri(args.url or "about:blank")
    Gtk.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
