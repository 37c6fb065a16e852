"""The web UI: server-rendered pages (Jinja2) over the same service layer as the CLI and the
REST API, served by `brewslm server` at /. Actions go through the REST API as jobs; charts are
plotly.js figures, the script served from the installed `plotly` package (no CDN).

    brewslm server            # then open http://127.0.0.1:8321/
"""
