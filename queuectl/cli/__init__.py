"""The command line: argument parsing in main.py, one module per group of commands."""
