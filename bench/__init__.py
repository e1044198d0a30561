"""Side-by-side benchmarks for owntracks-cert-bot (issue 6): `python3 -m bench [--quick]`.

Not collected by pytest (testpaths is tests/): nothing in CI may fail on a timing.
"""
