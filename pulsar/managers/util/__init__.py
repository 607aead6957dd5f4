"""Small utilities shared by managers, and imported by Galaxy (see `retry`)."""
