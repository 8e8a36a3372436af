"""Run mlplab from a checkout: ``python cli.py fit --config configs/quickstart.yaml`` (same as ``mlplab``)."""

from mlplab.__main__ import main

if __name__ == "__main__":
    main()
