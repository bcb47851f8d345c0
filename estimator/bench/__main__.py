"""``python -m estimator.bench``."""

from estimator.bench import main

if __name__ == "__main__":
    main()
