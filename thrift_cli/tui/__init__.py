"""`thrift top`: the live dashboard of the cache, in the terminal (Textual).

A shell, like the CLI: the core never imports it. source.py reads the cache file (no
Textual there); widgets.py draws the figures; screens.py holds the dialogs; app.py puts
them together; command.py is what `thrift top` runs.
"""
