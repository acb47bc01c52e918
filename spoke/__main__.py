"""``python -m spoke``: run the spoke server."""

from spoke.serve import main

if __name__ == "__main__":
    main()
