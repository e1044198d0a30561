"""Everything that imports ``telegram``: the Application, handlers, button data, HTML rendering."""
