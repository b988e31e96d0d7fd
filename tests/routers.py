"""A database router for tests/test_fastpath.py: reads go to another alias."""


class Elsewhere:
    def db_for_read(self, model, **hints):
        return "other"
