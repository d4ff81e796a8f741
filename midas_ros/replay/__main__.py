"""`python -m midas_ros.replay`: the replay evaluation command (cli.py)."""

from midas_ros.replay.cli import main

if __name__ == "__main__":  # --jobs' spawned workers import this module as __mp_main__
    main()
