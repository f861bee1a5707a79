"""Test kits shared by the tests and the benchmarks: the real CLI, synthetic scans, watcher drivers, fuzz targets."""
