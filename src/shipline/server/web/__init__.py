"""The web dashboard: server-rendered pages (Jinja2), one stylesheet and one small script,
mounted by `server.app` under `/ui` (see `server.web.app`)."""
