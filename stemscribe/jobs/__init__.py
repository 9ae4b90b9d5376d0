"""Jobs: the store (SQLAlchemy), the runner and its workers, and webhook delivery."""
