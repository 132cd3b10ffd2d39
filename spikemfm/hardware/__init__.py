"""Hardware profiles (TOML, cited) and the primitive costs they imply: a leaf package."""
