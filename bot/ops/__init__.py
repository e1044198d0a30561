"""The operator's tools: the ``otcert`` command line, ``doctor`` and the backup archive."""
