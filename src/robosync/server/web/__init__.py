"""The web console: server-rendered pages for people (routes, ``templates/``, ``static/``)."""
