"""``python -m candlekeeper`` == the ``candlekeeper`` console script."""

from candlekeeper.cli_entry import main

if __name__ == "__main__":  # pragma: no cover
    main()
