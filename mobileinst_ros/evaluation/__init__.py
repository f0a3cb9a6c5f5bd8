"""mobileinst-eval: metrics, report, offline and live replay of bags and datasets."""
