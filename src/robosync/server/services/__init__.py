"""The logic routes and the CLI call: accounts, projects, uploads, commits, manifests."""
