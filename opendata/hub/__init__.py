"""The comparative performance hub (issue 15): publishers and the community feed, validate and compare.

An organisation outside DWP runs it. Modules, one concept each:

* ``screen``: staged checks of an upload (file, structure, values, cross-file, usefulness), the
  report as JSON, a CSV to-do list and the uploader's spreadsheet with its problems marked.
* ``store``: the hub's own records (organisations, tokens, uploads, audit log) in one DuckDB file.
* ``app``: the web application (Starlette): upload, preview, publish, the public catalogue.
"""
