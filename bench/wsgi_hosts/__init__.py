"""Helpers of `bench/wsgi_servers.py`: the hosts' venv, the launcher run inside it, the
servers under comparison and the functional probes."""
