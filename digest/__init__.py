"""digest: the day's trending research papers, filtered per subscriber, in their inbox."""

__version__ = "0.1.0"
