"""Every setting the kit has, each with one default, and the one loader that reads them from TOML and flags."""
