"""The `arc-kit` command: thin argument parsing over the library; heavy imports happen inside handlers."""
