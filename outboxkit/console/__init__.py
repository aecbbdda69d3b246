"""The operator console: one page showing every component's state, pushed live over SSE.

`sources.py` reads each component (relay and quarantine, CDC, projectors) into JSON, `state.py`
polls them in one thread and keeps the last minutes for the chart, `actions.py` holds the
quarantine actions (off unless enabled with a token), `app.py` is the Starlette application and
`static/` the page (plain HTML and JavaScript, no build step).
"""
