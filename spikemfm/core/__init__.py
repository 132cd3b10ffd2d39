"""The small core every layer may use: argument checks, output files, timing, TOML config files."""
