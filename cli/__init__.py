"""The command-line front end: ``python main.py COMMAND ...`` (``allsight COMMAND ...``).

A thin layer over :mod:`engine`: it parses arguments, calls the engine and prints. It never
imports :mod:`gui`, and :mod:`gui` never imports it.
"""
