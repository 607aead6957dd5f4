"""`queued_cli`: batch systems driven through their command-line tools.

Job plugins (what to run: Slurm, Torque, OpenPBS, SlurmTorque, LSF) are data plus pure
functions; shell plugins (where to run it: LocalShell, SecureShell, RemoteShell) execute
argv lists; `manager.CliManager` wires them to the shared external-manager machinery.
"""
