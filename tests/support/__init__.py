"""Helpers the tests share (no tests here): importable as `support.<module>` because pytest
puts tests/ on sys.path (tests/conftest.py is a rootdir conftest).

    support.paths        ROOT of the repository, TEST_HOME (the suite's private FLOWDECK_HOME)
    support.api          `flowdeck api` as a subprocess and its module-scoped fixture `api`
    support.import_view  a tree of links named `flowdeck`, for mypy and import-linter
"""
