"""scanarchive's tests (a package, so bench/ can import tests.kits)."""
