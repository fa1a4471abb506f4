"""The browser client (Pyodide): main.py runs it under Emscripten; see main.py in this folder."""
