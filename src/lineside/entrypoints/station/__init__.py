"""The offline factory station process: its bundle, data directory, HTTP app and ledger sync."""
