"""Console entry points (`pulsar-config`, `pulsar-check`, the DRMAA sudo helpers, ...).

Each module exposes `main(argv=None) -> int`; setup.py maps the script names to them.
"""
