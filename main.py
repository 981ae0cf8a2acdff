"""Dualtone entry point: the GUI by default, subcommands for headless work (see --help)."""
import os
import sys

os.environ.setdefault("NUMBA_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache", "numba"))


def main() -> int:
    from app.cli.main import main as cli_main

    def gui(**options):
        from ui.app import run
        return run(**options)
    return cli_main(sys.argv[1:], gui=gui)


if __name__ == "__main__":
    sys.exit(main())
